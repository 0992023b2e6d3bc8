"""Relabeling checked against the real Prometheus: one scrape job per case with static targets,
read back from /api/v1/targets (discovered labels in, target labels or "dropped" out), and our
loader + relabel applied to the same discovered labels."""

from __future__ import annotations

import json
import socket
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from omtsdb.config import parse_config, relabel
from omtsdb.model.labels import Labels
from tests.config.test_relabel import HASHMOD_FROM_PROMETHEUS
from tests.conftest import peer_bin
from tests.helpers import stop_process

pytestmark = pytest.mark.slow  # a real peer or many trials: seconds per test

# job name -> (static targets, static labels, relabel_configs as a YAML flow list)
JOBS: dict[str, tuple[list[str], dict[str, str], str]] = {
    "copy": (["a:1"], {}, "[{source_labels: [__address__], target_label: copied}]"),
    "groups": (
        ["host.example:9100"],
        {},
        "[{source_labels: [__address__], regex: '(?P<h>[^:]+):(?P<p>\\d+)', target_label: x,"
        " replacement: '${p}/${h}/$$/$1x/${9}/$2'}]",
    ),
    "target_tpl": (
        ["abc:1"],
        {},
        "[{source_labels: [__address__], regex: '([a-z]+):.*', target_label: 't_${1}',"
        " replacement: v}]",
    ),
    "nomatch": (
        ["a:1"],
        {"env": "prod"},
        "[{source_labels: [env], regex: dev, target_label: env}]",
    ),
    "delete": (
        ["a:1"],
        {"env": "prod"},
        "[{source_labels: [env], target_label: env, replacement: ''}]",
    ),
    "literal": (["a:1"], {}, "[{source_labels: [nope], target_label: fixed, replacement: lit}]"),
    "sep": (
        ["a:1"],
        {"x": "1", "y": "2"},
        "[{source_labels: [x, missing, y], separator: '-', target_label: joined}]",
    ),
    "keep": (
        ["a:1", "b:2", "c:3"],
        {},
        "[{source_labels: [__address__], regex: '(a|b):.*', action: keep}]",
    ),
    "drop": (["a:1", "b:2"], {}, "[{source_labels: [__address__], regex: 'a:.*', action: drop}]"),
    "anchored": (["a:1"], {}, "[{source_labels: [__address__], regex: 'a', action: drop}]"),
    "keepequal": (
        ["a:1"],
        {"p": "same", "q": "same", "r": "other"},
        "[{source_labels: [p], target_label: q, action: keepequal}]",
    ),
    "dropequal": (
        ["a:1", "b:2"],
        {"p": "a:1"},
        "[{source_labels: [__address__], target_label: p, action: dropequal}]",
    ),
    "hashmod": (
        sorted(HASHMOD_FROM_PROMETHEUS),
        {},
        "[{source_labels: [__address__], modulus: 1000003, target_label: h, action: hashmod}]",
    ),
    "hashmod8": (
        ["host.example:9100", "x:1", "y:2", "z:3"],
        {},
        "[{source_labels: [__address__, job], modulus: 8, target_label: shard, action: hashmod}]",
    ),
    "labelmap": (
        ["a:1"],
        {"src_a": "1", "src_b": "2", "other": "3"},
        "[{regex: 'src_(.+)', replacement: 'dst_$1', action: labelmap}]",
    ),
    "labelmap_order": (
        ["a:1"],
        {"src_a": "1"},
        "[{target_label: c_k, replacement: from_c}, {source_labels: [src_a], target_label: src_k},"
        " {regex: '(?:c|src)_(k)', action: labelmap}]",
    ),
    "labeldrop": (
        ["a:1"],
        {"x_1": "1", "x_2": "2", "y": "3"},
        "[{regex: 'x_.', action: labeldrop}]",
    ),
    "labelkeep": (
        ["a:1"],
        {"keepme": "1", "dropme": "2"},
        "[{regex: '__.*|job|keepme', action: labelkeep}]",
    ),
    "case": (
        ["a:1"],
        {"u": "ÀÉ straße İx ΟΔΟΣ ǆ"},
        "[{source_labels: [u], target_label: up, action: uppercase},"
        " {source_labels: [u], target_label: low, action: lowercase}]",
    ),
    "newline": (["a:1"], {"v": "a\nb"}, "[{source_labels: [v], regex: 'a.b', action: keep}]"),
    "unicode_groups": (
        ["a:1"],
        {"u": "éxÿ"},
        "[{source_labels: [u], regex: '(.)(.)(.)', target_label: w, replacement: '$3$2$1'}]",
    ),
    "null_regex": (
        ["a:1"],
        {},
        "[{source_labels: [nope], regex: null, target_label: e, replacement: set},"
        " {source_labels: [job], regex: null, target_label: f, replacement: set}]",
    ),
    "empty_target": (
        ["a:1"],
        {},
        "[{source_labels: [job], regex: '(x)?.*', target_label: '$1', replacement: v}]",
    ),
    "instance": (
        ["a:1"],
        {},
        "[{source_labels: [__address__], regex: '(.*):.*', target_label: instance}]",
    ),
    "utf8_target": (["a:1"], {}, "[{source_labels: [job], target_label: 'foo-bar.baz'}]"),
}


def _config() -> str:
    lines = ["global:", "  scrape_interval: 1h", "  scrape_timeout: 1s", "scrape_configs:"]
    for job, (targets, labels, rules) in JOBS.items():
        lines.append(f"- job_name: {job}")
        group = {"targets": targets, "labels": labels} if labels else {"targets": targets}
        lines.append(f"  static_configs: [{json.dumps(group, ensure_ascii=False)}]")
        lines.append(f"  relabel_configs: {rules}")
    return "\n".join(lines) + "\n"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as r:
        return json.load(r)


@pytest.fixture(scope="module")
def prometheus_targets() -> Iterator[dict[str, Any]]:
    prometheus = peer_bin("prometheus")
    with tempfile.TemporaryDirectory() as d:
        cfg = Path(d) / "prometheus.yml"
        cfg.write_text(_config(), encoding="utf-8")
        port = _free_port()
        proc = subprocess.Popen(
            [
                str(prometheus),
                f"--config.file={cfg}",
                f"--storage.tsdb.path={d}/data",
                f"--web.listen-address=127.0.0.1:{port}",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        try:
            want = sum(len(t) for t, _, _ in JOBS.values())
            deadline = time.monotonic() + 60
            data: dict[str, Any] = {}
            while time.monotonic() < deadline:
                time.sleep(0.5)
                if proc.poll() is not None:
                    err = proc.stderr.read().decode() if proc.stderr else ""
                    pytest.fail(f"prometheus exited: {err[-2000:]}")
                try:
                    data = _get(f"http://127.0.0.1:{port}/api/v1/targets?state=any")["data"]
                except OSError:
                    continue
                if len(data["activeTargets"]) + len(data["droppedTargets"]) >= want:
                    break
            else:
                pytest.fail(f"prometheus did not list {want} targets in time: {data}")
            yield data
        finally:
            stop_process(proc)


def _expected(discovered: dict[str, str], job: str) -> dict[str, str] | None:
    cfg = parse_config(_config())
    (sc,) = [s for s in cfg.scrape_configs if s.job_name == job]
    out = relabel(Labels(discovered), sc.relabel_configs)
    if out is None:
        return None
    labels = {k: v for k, v in out if not k.startswith("__")}
    labels.setdefault("instance", out.get("__address__"))
    return labels


@pytest.mark.peer
@pytest.mark.parametrize("job", sorted(JOBS))
def test_relabel_agrees_with_prometheus(prometheus_targets: dict[str, Any], job: str) -> None:
    active = [t for t in prometheus_targets["activeTargets"] if t["scrapePool"] == job]
    dropped = [t for t in prometheus_targets["droppedTargets"] if t["scrapePool"] == job]
    assert len(active) + len(dropped) == len(JOBS[job][0])
    for t in active:
        assert _expected(t["discoveredLabels"], job) == t["labels"], t
    for t in dropped:
        assert _expected(t["discoveredLabels"], job) is None, t


@pytest.mark.peer
def test_hashmod_values_stored_in_unit_tests_are_prometheus_values(
    prometheus_targets: dict[str, Any],
) -> None:
    got = {
        t["discoveredLabels"]["__address__"]: int(t["labels"]["h"])
        for t in prometheus_targets["activeTargets"]
        if t["scrapePool"] == "hashmod"
    }
    assert got == HASHMOD_FROM_PROMETHEUS
