"""A corpus of good and bad configs: our accept/reject decision must equal ``promtool check
config`` (Prometheus 3.5) except for the few documented places where omtsdb is stricter."""

from __future__ import annotations

import subprocess
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from omtsdb.config import ConfigError, load_config
from tests.conftest import peer_bin


@dataclass(frozen=True)
class Case:
    name: str
    yaml: str
    ok: bool  # our decision
    error: str = ""  # a part of our message (bad cases)
    stricter: str = ""  # why promtool accepts what we refuse ("" = promtool agrees)
    files: dict[str, str] = field(default_factory=dict)  # extra files next to the config


FULL = """
global:
  scrape_interval: 15s
  evaluation_interval: 30s
  external_labels: {cluster: eu-1, "dotted.name": x}
rule_files: ["rules/*.yml", "other.rules"]
scrape_configs:
  - job_name: node
    scrape_interval: 1m30s
    scrape_timeout: 20s
    metrics_path: /probe
    scheme: https
    params: {module: [http_2xx], target: [a, b]}
    honor_labels: true
    body_size_limit: 10MB
    sample_limit: 1000
    basic_auth: {username: u, password_file: pw.txt}
    tls_config: {ca_file: ca.pem, insecure_skip_verify: false, min_version: TLS12}
    static_configs:
      - targets: ["node1:9100", "node2:9100"]
        labels: {env: prod}
    file_sd_configs:
      - files: ["targets/*.json", "more.yml"]
        refresh_interval: 1m
    relabel_configs:
      - source_labels: [__address__]
        regex: "(.*):.*"
        target_label: host
      - {action: labelmap, regex: "__meta_(.+)"}
    metric_relabel_configs:
      - {source_labels: [__name__], regex: "go_.*", action: drop}
  - job_name: api
    bearer_token_file: token
    enable_http2: false
    follow_redirects: false
    proxy_url: http://proxy:3128
alerting:
  alert_relabel_configs: [{action: labeldrop, regex: replica}]
  alertmanagers:
    - scheme: https
      path_prefix: /am
      timeout: 5s
      static_configs: [{targets: ["am:9093"]}]
remote_write:
  - url: https://remote/api/v1/write
    name: r1
    remote_timeout: 10s
    headers: {X-Scope-OrgID: t1}
    queue_config: {capacity: 5000, max_shards: 10, batch_send_deadline: 2s}
    metadata_config: {send: false}
    write_relabel_configs: [{source_labels: [__name__], regex: "up", action: keep}]
    authorization: {credentials: secret}
"""

SC = "scrape_configs:\n- job_name: a\n"

CASES = [
    Case("empty", "", True),
    Case("comment_only", "# nothing\n", True),
    Case("full", FULL, True),
    Case(
        "durations",
        "global: {scrape_interval: 1h, scrape_timeout: 0, evaluation_interval: 1m30s}\n",
        True,
    ),
    Case("sizes", SC + "  body_size_limit: 512KiB\n", True),
    Case("yaml11_bool", SC + "  honor_labels: yes\n  honor_timestamps: off\n", True),
    Case(
        "anchors_merge",
        "scrape_configs:\n- &a\n  job_name: a\n  scrape_interval: 5s\n- <<: *a\n  job_name: b\n",
        True,
    ),
    Case("number_as_job_name", "scrape_configs:\n- job_name: 123\n", True),
    Case("float_into_uint", SC + "  sample_limit: 1.5\n", True),
    Case(
        "ignored_sections",
        "storage: {tsdb: {out_of_order_time_window: 10m}, exemplars: {max_exemplars: 5}}\nruntime: {gogc: 50}\ntracing: {endpoint: 'localhost:4317'}\notlp: {promote_resource_attributes: [service.name]}\n",
        True,
    ),
    Case("empty_other_sd", SC + "  kubernetes_sd_configs: []\n", True),
    Case("null_regex", SC + "  relabel_configs: [{regex: null, target_label: x}]\n", True),
    Case("protocols", SC + "  scrape_protocols: [PrometheusProto, PrometheusText0.0.4]\n", True),
    Case(
        "legacy_names",
        SC
        + "  metric_name_validation_scheme: legacy\n  metric_name_escaping_scheme: underscores\n",
        True,
    ),
    Case("action_case", SC + "  relabel_configs: [{action: KEEP, source_labels: [a]}]\n", True),
    Case(
        "utf8_target_label",
        SC + "  relabel_configs: [{source_labels: [a], target_label: foo-bar}]\n",
        True,
    ),
    Case(
        "url_target_with_relabel",
        SC
        + "  static_configs: [{targets: ['http://a:1']}]\n  relabel_configs: [{source_labels: [__address__], regex: 'http://(.*)', target_label: __address__}]\n",
        True,
    ),
    # --- refused by both -------------------------------------------------------------------
    Case("unknown_top", "foo: 1\n", False, "line 1: field foo not found in type config.Config"),
    Case(
        "unknown_global",
        "global:\n  scrape_intervall: 1m\n",
        False,
        "line 2: field scrape_intervall not found",
    ),
    Case(
        "unknown_scrape",
        SC + "  foo: 1\n",
        False,
        "line 3: field foo not found in type config.ScrapeConfig",
    ),
    Case(
        "unknown_relabel",
        SC + "  relabel_configs:\n  - sourcelabels: [a]\n",
        False,
        "line 4: field sourcelabels not found in type relabel.Config",
    ),
    Case(
        "unknown_static",
        SC + "  static_configs:\n  - targets: [a:1]\n    label: {a: b}\n",
        False,
        "line 5: field label not found",
    ),
    Case(
        "unknown_tls",
        SC + "  tls_config: {ca: x, cafile: y}\n",
        False,
        "field cafile not found in type config.TLSConfig",
    ),
    Case(
        "unknown_queue",
        "remote_write:\n- url: http://x\n  queue_config: {shards: 1}\n",
        False,
        "field shards not found in type config.QueueConfig",
    ),
    Case(
        "duplicate_key",
        "global:\n  scrape_interval: 1s\n  scrape_interval: 2s\n",
        False,
        "line 3: field scrape_interval already set",
    ),
    Case(
        "duplicate_job",
        SC + "- job_name: a\n",
        False,
        'found multiple scrape configs with job name "a"',
    ),
    Case("empty_job", "scrape_configs:\n- scrape_interval: 1m\n", False, "job_name is empty"),
    Case("null_scrape", "scrape_configs:\n-\n", False, "empty or null scrape config section"),
    Case(
        "timeout_gt_interval",
        SC + "  scrape_interval: 5s\n  scrape_timeout: 6s\n",
        False,
        'scrape timeout greater than scrape interval for scrape config with job name "a"',
    ),
    Case(
        "global_timeout_gt_interval",
        "global: {scrape_interval: 5s, scrape_timeout: 1m}\n",
        False,
        "global scrape timeout greater than scrape interval",
    ),
    Case(
        "duration_no_unit",
        "global: {scrape_interval: 15}\n",
        False,
        'not a valid duration string: "15"',
    ),
    Case(
        "duration_bad_unit",
        "global: {scrape_interval: 15x}\n",
        False,
        'unknown unit "x" in duration "15x"',
    ),
    Case(
        "duration_order",
        "global: {scrape_interval: 1s1m}\n",
        False,
        'not a valid duration string: "1s1m"',
    ),
    Case("size_no_unit", SC + "  body_size_limit: 1000\n", False, "units: unknown unit  in 1000"),
    Case(
        "quoted_int", SC + "  sample_limit: '10'\n", False, "cannot unmarshal !!str `10` into uint"
    ),
    Case(
        "negative_uint", SC + "  sample_limit: -1\n", False, "cannot unmarshal !!int `-1` into uint"
    ),
    Case(
        "bad_bool",
        SC + "  honor_labels: maybe\n",
        False,
        "cannot unmarshal !!str `maybe` into bool",
    ),
    Case(
        "password_twice",
        SC + "  basic_auth: {username: u, password: p, password_file: f}\n",
        False,
        "at most one of basic_auth password, password_file & password_ref",
    ),
    Case(
        "bearer_and_authorization",
        SC + "  bearer_token: x\n  authorization: {credentials: y}\n",
        False,
        "authorization is not compatible with bearer_token",
    ),
    Case(
        "bearer_twice",
        SC + "  bearer_token: x\n  bearer_token_file: y\n",
        False,
        "at most one of bearer_token & bearer_token_file",
    ),
    Case(
        "authorization_basic",
        SC + "  authorization: {type: Basic}\n",
        False,
        'authorization type cannot be set to "basic"',
    ),
    Case(
        "replace_no_target",
        SC + "  relabel_configs: [{source_labels: [a]}]\n",
        False,
        "requires 'target_label' value",
    ),
    Case(
        "hashmod_no_modulus",
        SC + "  relabel_configs: [{action: hashmod, target_label: t}]\n",
        False,
        "requires non-zero modulus",
    ),
    Case(
        "labeldrop_extra",
        SC + "  relabel_configs: [{action: labeldrop, regex: a, source_labels: [b]}]\n",
        False,
        "labeldrop action requires only 'regex'",
    ),
    Case(
        "keepequal_regex",
        SC + "  relabel_configs: [{action: keepequal, target_label: t, regex: '(.*)'}]\n",
        False,
        "keepequal action requires only",
    ),
    Case(
        "bad_regex",
        SC + "  relabel_configs: [{regex: 'a(b', target_label: t}]\n",
        False,
        "error parsing regexp: missing closing )",
    ),
    Case(
        "unknown_action",
        SC + "  relabel_configs: [{action: rename}]\n",
        False,
        'unknown relabel action "rename"',
    ),
    Case(
        "lowercase_replacement",
        SC + "  relabel_configs: [{action: lowercase, target_label: t, replacement: x}]\n",
        False,
        "'replacement' can not be set",
    ),
    Case("rule_path", "rule_files: ['a/*/b.yml']\n", False, 'invalid rule file path "a/*/b.yml"'),
    Case(
        "remote_write_no_url", "remote_write:\n- name: x\n", False, "url for remote_write is empty"
    ),
    Case(
        "remote_write_bad_url",
        "remote_write:\n- url: '::'\n",
        False,
        'parse "::": missing protocol scheme',
    ),
    Case(
        "remote_write_header",
        "remote_write:\n- url: http://x\n  headers: {User-Agent: me}\n",
        False,
        "User-Agent is a reserved header",
    ),
    Case(
        "remote_write_names",
        "remote_write:\n- {url: http://x, name: a}\n- {url: http://y, name: a}\n",
        False,
        "found multiple remote write configs",
    ),
    Case(
        "alertmanager_v1",
        "alerting:\n  alertmanagers: [{api_version: v1}]\n",
        False,
        "expected Alertmanager api version to be one of [v2] but got v1",
    ),
    Case(
        "url_as_target",
        SC + "  static_configs: [{targets: ['http://a:1/metrics']}]\n",
        False,
        '"http://a:1/metrics" is not a valid hostname',
    ),
    Case(
        "file_sd_extension",
        SC + "  file_sd_configs: [{files: [targets.txt]}]\n",
        False,
        'path name "targets.txt" is not valid for file discovery',
    ),
    Case(
        "no_protocols", SC + "  scrape_protocols: []\n", False, "scrape_protocols cannot be empty"
    ),
    Case(
        "unknown_protocol",
        SC + "  scrape_protocols: [Text]\n",
        False,
        "unknown scrape protocol Text",
    ),
    Case(
        "empty_label_name",
        "global:\n  external_labels: {'': x}\n",
        False,
        '"" is not a valid label name',
    ),
    Case("yaml_syntax", SC + "   foo: 1\n", False, "yaml: line 3: mapping values are not allowed"),
    Case("seq_as_root", "- a\n", False, "cannot unmarshal !!seq into config.Config"),
    Case(
        "otlp_strategy",
        "otlp: {translation_strategy: Foo}\n",
        False,
        'unsupported OTLP translation strategy "Foo"',
    ),
    Case(
        "tracing_endpoint", "tracing: {client_type: http}\n", False, "tracing endpoint must be set"
    ),
    Case(
        "legacy_with_utf8_escaping",
        SC + "  metric_name_validation_scheme: legacy\n",
        False,
        "utf8 metric names requested",
    ),
    # --- scrape_config_files (checked without --syntax-only, which reads them) --------------
    Case(
        "scrape_config_files",
        "scrape_config_files: ['jobs/*.yml']\n" + SC,
        True,
        files={
            "jobs/b.yml": "scrape_configs:\n- job_name: b\n  file_sd_configs: [{files: [t/*.json]}]\n"
        },
    ),
    Case(
        "scrape_config_files_dup",
        "scrape_config_files: ['jobs/*.yml']\n" + SC,
        False,
        'found multiple scrape configs with job name "a", first found in main config file',
        files={"jobs/a.yml": "scrape_configs:\n- job_name: a\n"},
    ),
    Case(
        "scrape_config_files_unknown",
        "scrape_config_files: ['jobs/*.yml']\n",
        False,
        "field global not found in type config.ScrapeConfigs",
        files={"jobs/g.yml": "global: {}\n"},
    ),
    Case(
        "scrape_config_files_inherit",
        "global: {scrape_interval: 1m, scrape_timeout: 1m}\nscrape_config_files: ['jobs/*.yml']\n",
        True,
        files={"jobs/b.yml": "scrape_configs:\n- job_name: b\n  scrape_interval: 30s\n"},
    ),
    # --- omtsdb is stricter -----------------------------------------------------------------
    Case(
        "scheme_ftp",
        SC + "  scheme: ftp\n",
        False,
        'scheme must be "http" or "https"',
        stricter="Prometheus only fails each scrape",
    ),
    Case(
        "kubernetes_sd",
        SC + "  kubernetes_sd_configs: [{role: pod}]\n",
        False,
        "kubernetes_sd_configs is not supported by omtsdb",
        stricter="no Kubernetes discovery in omtsdb",
    ),
    Case(
        "remote_read",
        "remote_read: [{url: 'http://x'}]\n",
        False,
        "remote_read is not supported by omtsdb",
        stricter="no remote read in omtsdb",
    ),
    Case(
        "oauth2",
        SC + "  oauth2: {client_id: a, token_url: 'http://x'}\n",
        False,
        "oauth2 is not supported by omtsdb",
        stricter="no OAuth2 client in omtsdb",
    ),
    Case(
        "http_headers",
        SC + "  http_headers: {X-A: {values: [a]}}\n",
        False,
        "http_headers is not supported by omtsdb",
        stricter="not implemented",
    ),
    Case(
        "sigv4",
        "remote_write:\n- url: http://x\n  sigv4: {region: eu-west-1}\n",
        False,
        "sigv4 is not supported by omtsdb",
        stricter="no AWS signing in omtsdb",
    ),
]


def _write(tmp: Path, case: Case) -> Path:
    d = tmp / case.name
    d.mkdir()
    for rel, text in case.files.items():
        (d / rel).parent.mkdir(parents=True, exist_ok=True)
        (d / rel).write_text(text, encoding="utf-8")
    path = d / "prometheus.yml"
    path.write_text(case.yaml, encoding="utf-8")
    return path


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_our_decision(case: Case, tmp_path: Path) -> None:
    path = _write(tmp_path, case)
    if case.ok:
        cfg = load_config(path)
        assert cfg.source == case.yaml and cfg.path == str(path)
        return
    with pytest.raises(ConfigError) as ei:
        load_config(path)
    msg = str(ei.value)
    assert msg.startswith(f"parsing YAML file {path}: "), msg
    assert case.error in msg, msg


def _promtool_ok(promtool: Path, path: Path, case: Case) -> tuple[bool, str]:
    args = [str(promtool), "check", "config"]
    if not case.files:
        args.append("--syntax-only")  # no rule-file or SD-file existence checks
    p = subprocess.run([*args, str(path)], capture_output=True, text=True, timeout=60)
    return p.returncode == 0, p.stdout + p.stderr


@pytest.fixture(scope="module")
def promtool_results() -> dict[str, tuple[bool, str]]:
    promtool = peer_bin("promtool")
    with tempfile.TemporaryDirectory() as d:
        paths = {c.name: _write(Path(d), c) for c in CASES}
        with ThreadPoolExecutor(max_workers=4) as pool:
            futures = {c.name: pool.submit(_promtool_ok, promtool, paths[c.name], c) for c in CASES}
            return {name: f.result() for name, f in futures.items()}


@pytest.mark.slow
@pytest.mark.peer
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_promtool_agrees(case: Case, promtool_results: dict[str, tuple[bool, str]]) -> None:
    ok, output = promtool_results[case.name]
    if case.stricter:
        assert ok, f"promtool refuses it too, drop the 'stricter' note: {output}"
    else:
        assert ok == case.ok, output
