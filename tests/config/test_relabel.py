"""Relabeling: every action, Go's template expansion, validation, fast paths, speed."""

from __future__ import annotations

import pytest
import re2
from hypothesis import given, settings
from hypothesis import strategies as st

from omtsdb.config import ConfigError, RelabelConfig, parse_config, relabel
from omtsdb.config.regex import Regex, compile_regex, expand, parse_template
from omtsdb.config.relabel import go_lower, go_upper, validate_relabel_config
from omtsdb.model.labels import Labels

BASE = Labels(
    {
        "__address__": "host.example:9100",
        "job": "node",
        "env": "prod",
        "src_a": "1",
        "src_b": "2",
        "__meta_kubernetes_pod_label_app": "web",
    }
)


def R(**kw: object) -> RelabelConfig:
    if "source_labels" in kw:
        kw["source_labels"] = tuple(kw["source_labels"])  # type: ignore[arg-type]
    return RelabelConfig(**kw)  # type: ignore[arg-type]


def rules(yaml_list: str) -> tuple[RelabelConfig, ...]:
    cfg = parse_config(f"scrape_configs:\n- job_name: x\n  relabel_configs: {yaml_list}\n")
    return cfg.scrape_configs[0].relabel_configs


# (rules as YAML flow list, expected changes to BASE: name -> value, "" = removed; None = dropped)
CASES: list[tuple[str, dict[str, str] | None]] = [
    ("[{source_labels: [__address__], target_label: instance}]", {"instance": "host.example:9100"}),
    (
        "[{source_labels: [__address__], regex: '([^:]+):(\\d+)', target_label: host, replacement: '$1'}]",
        {"host": "host.example"},
    ),
    (
        "[{source_labels: [__address__], regex: '(?P<h>[^:]+):(?P<p>\\d+)', target_label: x, replacement: '${p}/${h}/$$/$1x/${9}'}]",
        {"x": "9100/host.example/$//"},
    ),
    (
        "[{source_labels: [job, env], separator: '-', regex: '(.*)', target_label: both}]",
        {"both": "node-prod"},
    ),
    ("[{source_labels: [missing, job], target_label: j}]", {"j": ";node"}),
    ("[{source_labels: [env], regex: 'dev', target_label: env, replacement: 'x'}]", {}),
    ("[{source_labels: [env], target_label: env, replacement: ''}]", {"env": ""}),
    ("[{source_labels: [missing], target_label: fixed, replacement: 'lit'}]", {"fixed": "lit"}),
    ("[{target_label: fixed, replacement: 'lit'}]", {"fixed": "lit"}),
    (
        "[{source_labels: [job], regex: '(n)(o)de', target_label: 'lbl_${2}$1', replacement: v}]",
        {"lbl_on": "v"},
    ),
    ("[{source_labels: [job], regex: '(x)?node', target_label: '$1', replacement: v}]", {}),
    ("[{source_labels: [job], regex: node|api, action: keep}]", {}),
    ("[{source_labels: [job], regex: api, action: keep}]", None),
    ("[{source_labels: [job], regex: 'no.*', action: drop}]", None),
    ("[{source_labels: [job], regex: 'no', action: drop}]", {}),  # anchored: no partial match
    ("[{source_labels: [src_a], target_label: src_a, action: keepequal}]", {}),
    ("[{source_labels: [src_a], target_label: src_b, action: keepequal}]", None),
    ("[{source_labels: [src_a], target_label: src_b, action: dropequal}]", {}),
    ("[{source_labels: [missing], target_label: also_missing, action: dropequal}]", None),
    (
        "[{source_labels: [__address__], modulus: 8, target_label: shard, action: hashmod}]",
        {"shard": "7"},  # md5("host.example:9100")[8:] big-endian % 8
    ),
    ("[{regex: 'src_(.+)', action: labelmap}]", {"a": "1", "b": "2"}),
    (
        "[{regex: '__meta_kubernetes_pod_label_(.+)', replacement: 'k8s_$1', action: labelmap}]",
        {"k8s_app": "web"},
    ),
    ("[{regex: 'src_.*', action: labeldrop}]", {"src_a": "", "src_b": ""}),
    (
        "[{regex: '__.*|job', action: labelkeep}]",
        {"env": "", "src_a": "", "src_b": ""},
    ),
    ("[{source_labels: [job], target_label: up, action: uppercase}]", {"up": "NODE"}),
    (
        "[{source_labels: [__address__], target_label: lo, action: Lowercase}]",
        {"lo": "host.example:9100"},
    ),
    (
        "[{source_labels: [job], target_label: tmp}, {source_labels: [tmp], regex: node, action: drop}]",
        None,
    ),
    # Builder order: a label set by a rule is visited after the untouched ones, so its value
    # wins a labelmap collision even though "c_k" sorts before "src_a".
    (
        "[{target_label: c_k, replacement: from_c}, {source_labels: [src_a], target_label: src_k},"
        " {regex: '(?:c|src)_(k)', action: labelmap}]",
        {"c_k": "from_c", "src_k": "1", "k": "1"},
    ),
    (
        "[{target_label: src_k, replacement: from_src}, {source_labels: [src_a], target_label: c_k},"
        " {regex: '(?:c|src)_(k)', action: labelmap}]",
        {"c_k": "1", "src_k": "from_src", "k": "1"},
    ),
    ("[{source_labels: [job], regex: null, target_label: e, replacement: set}]", {}),
    ("[{source_labels: [missing], regex: null, target_label: e, replacement: set}]", {"e": "set"}),
]


@pytest.mark.parametrize(("yaml_rules", "changes"), CASES)
def test_relabel_cases(yaml_rules: str, changes: dict[str, str] | None) -> None:
    got = relabel(BASE, rules(yaml_rules))
    if changes is None:
        assert got is None
        return
    want = BASE.to_dict()
    for k, v in changes.items():
        if v == "":
            want.pop(k, None)
        else:
            want[k] = v
    assert got == Labels(want)


def test_unchanged_returns_same_object_and_empty_rules() -> None:
    assert relabel(BASE, ()) is BASE
    assert relabel(BASE, rules("[{source_labels: [job], regex: node, action: keep}]")) is BASE


def test_newlines_and_unicode() -> None:
    lbls = Labels({"v": "a\nb", "u": "éxÿ"})
    assert relabel(lbls, (R(source_labels=["v"], regex="a.b", action="keep"),)) == lbls
    got = relabel(
        lbls, (R(source_labels=["u"], regex="(.)(.)(.)", target_label="w", replacement="$3$2$1"),)
    )
    assert got is not None and got.get("w") == "ÿxé"
    got = relabel(lbls, (R(source_labels=["u"], regex="é(x)ÿ", target_label="w"),))
    assert got is not None and got.get("w") == "x"


def test_go_case_mapping() -> None:
    assert go_upper("straße ǆ ﬀ") == "STRAßE Ǆ ﬀ"  # no single-rune upper case: kept
    assert go_lower("İSTANBUL ΟΔΟΣ") == "istanbul οδοσ"  # simple mappings, no final sigma


@pytest.mark.parametrize(
    ("template", "want"),
    [
        ("$1", "A"),
        ("${1}", "A"),
        ("$1x", ""),  # "1x" is a (missing) name, as in Go
        ("${1}x", "Ax"),
        ("$name", "B"),
        ("${name}", "B"),
        ("$$1", "$1"),
        ("$", "$"),
        ("a$", "a$"),
        ("${", "${"),
        ("${1", "${1"),
        ("$!", "$!"),
        ("$01", ""),
        ("$2$1", "BA"),
        ("$9", ""),
        ("$0", "AB"),
        ("x${nope}y", "xy"),
    ],
)
def test_template_expansion(template: str, want: str) -> None:
    rx = Regex("(A)(?P<name>B)")
    groups = rx.groups("AB")
    assert groups is not None
    assert expand(parse_template(template, rx.group_names), groups) == want


@pytest.mark.parametrize(
    ("cfg", "message"),
    [
        (
            R(action="replace"),
            "relabel configuration for replace action requires 'target_label' value",
        ),
        (
            R(action="hashmod", target_label="t"),
            "relabel configuration for hashmod requires non-zero modulus",
        ),
        (
            R(action="lowercase", target_label="t", replacement="x"),
            "'replacement' can not be set for lowercase action",
        ),
        (R(action="labelmap", replacement=""), "\"\" is invalid 'replacement' for labelmap action"),
        (
            R(action="labeldrop", source_labels=["a"]),
            "labeldrop action requires only 'regex', and no other fields",
        ),
        (
            R(action="labelkeep", separator=","),
            "labelkeep action requires only 'regex', and no other fields",
        ),
        (
            R(action="keepequal", target_label="t", regex="x"),
            "keepequal action requires only 'source_labels' and `target_label`, and no other fields",
        ),
        (
            R(action="dropequal", target_label="t", modulus=2),
            "dropequal action requires only 'source_labels' and `target_label`, and no other fields",
        ),
        (R(action="nope"), 'unknown relabel action "nope"'),
        (R(action=""), "relabel action cannot be empty"),
        (R(target_label="t", regex="("), "error parsing regexp: missing closing ): `^(?s:()$`"),
        (
            R(target_label="t", regex="a**"),
            "error parsing regexp: invalid nested repetition operator: `**`",
        ),
        (
            R(target_label="t", regex="(?=x)"),
            "error parsing regexp: invalid or unsupported Perl syntax: `(?=`",
        ),
        (R(source_labels=[""], target_label="t"), '"" is not a valid label name'),
    ],
)
def test_validation(cfg: RelabelConfig, message: str) -> None:
    with pytest.raises(ValueError, match="^" + re2.escape(message) + "$"):
        validate_relabel_config(cfg)
    with pytest.raises(ConfigError, match=re2.escape(message)):
        relabel(BASE, (cfg,))


def test_utf8_target_labels_are_valid() -> None:
    # Prometheus 3 validates names with the UTF-8 scheme: "foo-bar" is a valid target.
    cfg = R(source_labels=["job"], target_label="foo-bar.baz")
    validate_relabel_config(cfg)
    got = relabel(BASE, (cfg,))
    assert got is not None and got.get("foo-bar.baz") == "node"


# Values printed by the real Prometheus 3.5.3 (static targets with a hashmod relabel rule,
# modulus 1000003, read back from /api/v1/targets); tests/config/test_relabel_prometheus.py
# re-checks them live when /opt/prom3 is installed.
HASHMOD_FROM_PROMETHEUS = {
    "a:1": 45634,
    "b:2": 768514,
    "node-exporter.example.com:9100": 774732,
    "10.0.0.1:80": 17653,
    "ünïcode:1": 970397,
}


@pytest.mark.parametrize(("address", "want"), sorted(HASHMOD_FROM_PROMETHEUS.items()))
def test_hashmod_matches_prometheus(address: str, want: int) -> None:
    cfg = R(source_labels=["__address__"], action="hashmod", modulus=1000003, target_label="h")
    got = relabel(Labels({"__address__": address}), (cfg,))
    assert got is not None and got.get("h") == str(want)


_PATTERNS = [
    "(.*)",
    ".*",
    ".+",
    "(.+)",
    "",
    "foo",
    "foo|bar|",
    "(foo|bar)",
    "a\\.b",
    "pre_(.*)",
    "pre_(.+)",
    "(.*)_suf",
    "pre.*suf",
    "p(.+)s",
    "a\\.*",
    "\\\\.*",
    "x(.*)y(.*)",
    "()",
]
_ALPHABET = st.text(alphabet="abfoprsuxy_.\\é\n", max_size=8)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(_PATTERNS), _ALPHABET)
def test_fast_shapes_agree_with_re2(pattern: str, s: str) -> None:
    fast = Regex(pattern)
    opts = re2.Options()
    opts.dot_nl = True
    m = re2.compile("^(?s:" + pattern + ")$", options=opts).match(s)
    want = None if m is None else (m.group(0), *m.groups())
    assert fast.groups(s) == want, (fast._kind, pattern, s)
    assert fast.match(s) is (want is not None)


def test_fast_shapes_are_used() -> None:
    assert compile_regex("(.*)")._kind == "wild"
    assert compile_regex("__meta_kubernetes_pod_label_(.+)")._kind == "wild"
    assert compile_regex("go_gc_.*|process_.*")._kind == "re2"
    assert compile_regex("up|scrape_duration_seconds")._kind == "set"


def test_lists_are_not_cached_by_identity() -> None:
    cfgs = [R(source_labels=["job"], target_label="a")]
    got = relabel(BASE, cfgs)
    assert got is not None and got.get("a") == "node"
    cfgs[0] = R(source_labels=["env"], target_label="a")
    got = relabel(BASE, cfgs)
    assert got is not None and got.get("a") == "prod"
