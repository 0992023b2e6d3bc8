"""End to end: ``omtsdb serve --config.file`` scraping a real node_exporter beside a real
Prometheus 3.5 scraping the same exporter; configuration reload over HTTP and SIGHUP; a bad
configuration at start."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tests.api.test_peer_prometheus import free_port
from tests.conftest import ROOT, peer_bin
from tests.remote.test_peer_remote import _proc, _prometheus

pytestmark = pytest.mark.slow  # a real peer or many trials: seconds per test


def _get(port: int, path: str, **params: str) -> Any:
    url = f"http://127.0.0.1:{port}{path}"
    if params:
        url += "?" + urllib.parse.urlencode(params)
    with urllib.request.urlopen(url, timeout=10) as r:
        return json.load(r)


def _post(port: int, path: str) -> tuple[int, str]:
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=b"", method="POST")
    try:
        with urllib.request.urlopen(req, timeout=20) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def _serve_args(tmp: Path, port: int, cfg: Path, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "omtsdb",
        "serve",
        "--config.file",
        str(cfg),
        "--storage.tsdb.path",
        str(tmp / "omtsdb"),
        f"--web.listen-address=127.0.0.1:{port}",
        "--log.level=warning",
        *extra,
    ]


def _env() -> dict[str, str]:
    return dict(os.environ, PYTHONPATH=str(ROOT))


def _wait_for(fn: Any, timeout: float = 20.0) -> Any:
    end = time.monotonic() + timeout
    last = None
    while time.monotonic() < end:
        last = fn()
        if last:
            return last
        time.sleep(0.25)
    raise AssertionError(f"condition not met in {timeout}s (last: {last!r})")


def _series(port: int, match: str) -> set[tuple[tuple[str, str], ...]]:
    body = _get(port, "/api/v1/series", **{"match[]": match})
    return {tuple(sorted(m.items())) for m in body["data"]}


def test_omtsdb_scrapes_node_exporter_like_prometheus(tmp_path: Path) -> None:
    ne_port, om_port, pr_port = free_port(), free_port(), free_port()
    scrape = f"""
global:
  scrape_interval: 1s
  scrape_timeout: 1s
scrape_configs:
  - job_name: node
    static_configs:
      - targets: ['127.0.0.1:{ne_port}']
        labels: {{env: test}}
"""
    cfg = tmp_path / "omtsdb.yml"
    cfg.write_text(scrape)
    ne = [str(peer_bin("prometheus-node-exporter")), f"--web.listen-address=127.0.0.1:{ne_port}"]
    with (
        _proc(ne, f"http://127.0.0.1:{ne_port}/metrics"),
        _proc(_serve_args(tmp_path, om_port, cfg), f"http://127.0.0.1:{om_port}/-/ready", _env()),
        _prometheus(tmp_path, pr_port, scrape),
    ):

        def both_up() -> bool:
            r = [_get(p, "/api/v1/query", query='up{job="node"}') for p in (om_port, pr_port)]
            return all(x["data"]["result"] and x["data"]["result"][0]["value"][1] == "1" for x in r)

        _wait_for(both_up)
        _wait_for(
            lambda: (
                len(
                    _get(om_port, "/api/v1/query", query="scrape_samples_scraped")["data"]["result"]
                )
                == 1
            )
        )
        # the same series (labels included) for metrics whose set does not change between scrapes
        for metric in (
            "node_cpu_seconds_total",
            "node_filesystem_size_bytes",
            "up",
            "scrape_duration_seconds",
            "node_exporter_build_info",
        ):
            ours, theirs = _series(om_port, metric), _series(pr_port, metric)
            assert ours == theirs and ours, metric
        # and the same metric names from the exporter
        names_o = set(
            _get(om_port, "/api/v1/label/__name__/values", **{"match[]": '{job="node"}'})["data"]
        )
        names_p = set(
            _get(pr_port, "/api/v1/label/__name__/values", **{"match[]": '{job="node"}'})["data"]
        )
        assert names_o == names_p, names_o ^ names_p
        # metadata from the scrape
        md = _get(om_port, "/api/v1/metadata", metric="node_cpu_seconds_total")["data"]
        assert md["node_cpu_seconds_total"][0]["type"] == "counter"
        # targets API as Prometheus shows it
        (t,) = _get(om_port, "/api/v1/targets")["data"]["activeTargets"]
        (pt,) = _get(pr_port, "/api/v1/targets")["data"]["activeTargets"]
        assert t["health"] == "up" and t["labels"] == pt["labels"]
        assert t["discoveredLabels"] == pt["discoveredLabels"]
        assert t["scrapeUrl"] == pt["scrapeUrl"] and t["scrapeInterval"] == "1s"


def test_reload_keeps_old_config_on_error_and_applies_good_one(tmp_path: Path) -> None:
    ne_port, om_port = free_port(), free_port()
    job = f"""
  - job_name: node
    static_configs: [{{targets: ['127.0.0.1:{ne_port}']}}]
"""
    cfg = tmp_path / "omtsdb.yml"
    cfg.write_text("global: {scrape_interval: 1s, scrape_timeout: 1s}\nscrape_configs:" + job)
    ne = [str(peer_bin("prometheus-node-exporter")), f"--web.listen-address=127.0.0.1:{ne_port}"]
    args = _serve_args(tmp_path, om_port, cfg, "--web.enable-lifecycle")
    with (
        _proc(ne, f"http://127.0.0.1:{ne_port}/metrics"),
        _proc(args, f"http://127.0.0.1:{om_port}/-/ready", _env()) as om,
    ):
        assert _get(om_port, "/api/v1/scrape_pools")["data"]["scrapePools"] == ["node"]
        cfg.write_text(cfg.read_text() + "bogus_key: 1\n")
        code, text = _post(om_port, "/-/reload")
        assert code == 500 and text.startswith("failed to reload config: ")
        assert "bogus_key" in text
        info = _get(om_port, "/api/v1/status/runtimeinfo")["data"]
        assert info["reloadConfigSuccess"] is False
        assert _get(om_port, "/api/v1/scrape_pools")["data"]["scrapePools"] == ["node"]
        # a good config with a second job
        cfg.write_text(
            "global: {scrape_interval: 1s, scrape_timeout: 1s}\nscrape_configs:"
            + job
            + job.replace("job_name: node", "job_name: node2")
        )
        assert _post(om_port, "/-/reload") == (200, "")
        assert _get(om_port, "/api/v1/status/runtimeinfo")["data"]["reloadConfigSuccess"]
        assert _get(om_port, "/api/v1/scrape_pools")["data"]["scrapePools"] == ["node", "node2"]
        _wait_for(
            lambda: len(_get(om_port, "/api/v1/query", query="up == 1")["data"]["result"]) == 2
        )
        # SIGHUP reloads too: drop node2
        cfg.write_text("global: {scrape_interval: 1s, scrape_timeout: 1s}\nscrape_configs:" + job)
        om.send_signal(signal.SIGHUP)
        _wait_for(lambda: _get(om_port, "/api/v1/scrape_pools")["data"]["scrapePools"] == ["node"])
        # the removed job's series are marked stale: no longer returned by an instant query
        _wait_for(lambda: len(_get(om_port, "/api/v1/query", query="up")["data"]["result"]) == 1)
        # GET is refused as Prometheus refuses it
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{om_port}/-/reload", timeout=5)
            raise AssertionError("GET /-/reload accepted")
        except urllib.error.HTTPError as e:
            assert e.code == 405 and e.read().decode() == "Only POST or PUT requests allowed"


def test_lifecycle_disabled_and_bad_config_at_start(tmp_path: Path) -> None:
    port = free_port()
    cfg = tmp_path / "omtsdb.yml"
    cfg.write_text("global: {scrape_interval: 15s}\n")
    with _proc(_serve_args(tmp_path, port, cfg), f"http://127.0.0.1:{port}/-/ready", _env()):
        assert _post(port, "/-/reload") == (403, "Lifecycle API is not enabled.")
    bad = tmp_path / "bad.yml"
    bad.write_text("scrape_configs:\n  - job_name: x\n    scrape_intervall: 5s\n")
    p = subprocess.run(
        _serve_args(tmp_path, free_port(), bad),
        env=_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert p.returncode == 1
    assert "scrape_intervall" in p.stderr and "Traceback" not in p.stderr


@pytest.mark.parametrize("message", ["prometheus.WriteRequest", "io.prometheus.write.v2.Request"])
def test_omtsdb_remote_writes_to_a_real_prometheus(tmp_path: Path, message: str) -> None:
    ne_port, om_port, pr_port = free_port(), free_port(), free_port()
    cfg = tmp_path / "omtsdb.yml"
    cfg.write_text(f"""
global:
  scrape_interval: 1s
  scrape_timeout: 1s
  external_labels: {{replica: om1}}
scrape_configs:
  - job_name: node
    static_configs: [{{targets: ['127.0.0.1:{ne_port}']}}]
remote_write:
  - url: http://127.0.0.1:{pr_port}/api/v1/write
    queue_config: {{batch_send_deadline: 200ms}}
    protobuf_message: {message}
    write_relabel_configs:
      - source_labels: [__name__]
        regex: 'node_cpu_seconds_total|up'
        action: keep
""")
    (tmp_path / "prom.yml").write_text("global: {scrape_interval: 1h}\n")
    prom = [
        str(peer_bin("prometheus")),
        "--config.file",
        str(tmp_path / "prom.yml"),
        "--storage.tsdb.path",
        str(tmp_path / "prom"),
        f"--web.listen-address=127.0.0.1:{pr_port}",
        "--web.enable-remote-write-receiver",
    ]
    ne = [str(peer_bin("prometheus-node-exporter")), f"--web.listen-address=127.0.0.1:{ne_port}"]
    with (
        _proc(ne, f"http://127.0.0.1:{ne_port}/metrics"),
        _proc(prom, f"http://127.0.0.1:{pr_port}/-/ready"),
        _proc(_serve_args(tmp_path, om_port, cfg), f"http://127.0.0.1:{om_port}/-/ready", _env()),
    ):
        _wait_for(lambda: _series(pr_port, "node_cpu_seconds_total"))
        # the upstream got the kept series with the external label, and nothing else
        ours = {
            tuple(sorted((*s, ("replica", "om1"))))
            for s in _series(om_port, "node_cpu_seconds_total")
        }
        _wait_for(lambda: _series(pr_port, "node_cpu_seconds_total") == ours)
        names = _get(pr_port, "/api/v1/label/__name__/values")["data"]
        assert sorted(names) == ["node_cpu_seconds_total", "up"]

        # the same samples: the newest value of one series at a time both have passed
        def same_value() -> bool:
            t = time.time() - 1
            q = 'node_cpu_seconds_total{cpu="0",mode="idle"}'
            a = _get(om_port, "/api/v1/query", query=q, time=str(t))["data"]["result"]
            b = _get(pr_port, "/api/v1/query", query=q, time=str(t))["data"]["result"]
            seen[:] = [a, b]
            return bool(a) and bool(b) and a[0]["value"] == b[0]["value"]

        seen: list[Any] = []
        try:
            _wait_for(same_value)
        except AssertionError:
            raise AssertionError(f"answers differ: {seen}") from None


def test_sigterm_keeps_what_was_acknowledged(tmp_path: Path) -> None:
    """Samples acknowledged over remote write and scraped ones survive a SIGTERM and restart."""
    from omtsdb.remote.build import snappy, write_request_v1

    port = free_port()
    cfg = tmp_path / "omtsdb.yml"
    cfg.write_text(
        "global: {scrape_interval: 1s, scrape_timeout: 1s}\nscrape_configs:\n"
        f"  - job_name: self\n    static_configs: [{{targets: ['127.0.0.1:{port}']}}]\n"
    )
    now = int(time.time() * 1000)
    body = snappy(write_request_v1([({"__name__": "acked", "k": "v"}, [(now - 1000, 1.5)])]))
    args = _serve_args(tmp_path, port, cfg)
    with _proc(args, f"http://127.0.0.1:{port}/-/ready", _env()) as p:
        req = urllib.request.Request(
            f"http://127.0.0.1:{port}/api/v1/write",
            data=body,
            method="POST",
            headers={
                "Content-Type": "application/x-protobuf",
                "Content-Encoding": "snappy",
                "X-Prometheus-Remote-Write-Version": "0.1.0",
            },
        )
        with urllib.request.urlopen(req, timeout=10) as r:
            assert r.status == 204
        _wait_for(lambda: _get(port, "/api/v1/query", query='up{job="self"}')["data"]["result"])
        scraped = _get(port, "/api/v1/query", query="count(up)")["data"]["result"][0]["value"][1]
        p.send_signal(signal.SIGTERM)
        assert p.wait(timeout=30) == 0
    cfg.write_text("global: {scrape_interval: 1h}\n")
    with _proc(args, f"http://127.0.0.1:{port}/-/ready", _env()):
        got = _get(port, "/api/v1/query", query="acked", time=str(now / 1000))["data"]["result"]
        assert [(x["metric"], x["value"][1]) for x in got] == [
            ({"__name__": "acked", "k": "v"}, "1.5")
        ]
        # the scraped series are back (within the 5 m lookback of the last scrape)
        again = _get(port, "/api/v1/query", query="count(up)")["data"]["result"]
        assert again[0]["value"][1] == scraped
