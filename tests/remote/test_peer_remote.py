"""End to end with the real peers: Prometheus 3.5 scraping node_exporter and remote-writing
into omtsdb (both must then answer the same PromQL alike), and Prometheus remote-reading data
that exists only in omtsdb."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from omtsdb.remote.build import snappy, write_request_v1
from tests.api.test_peer_prometheus import free_port, wait_ready
from tests.conftest import ROOT, peer_bin
from tests.helpers import stop_process

pytestmark = pytest.mark.slow  # a real peer or many trials: seconds per test


@contextmanager
def _proc(
    args: list[str], ready_url: str, env: dict[str, str] | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    p = subprocess.Popen(
        args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT, env=env
    )
    try:
        wait_ready(ready_url, p, timeout=30)
        yield p
    finally:
        stop_process(p)


def _omtsdb(tmp: Path, port: int) -> Any:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    args = [
        sys.executable,
        "-m",
        "omtsdb",
        "serve",
        "--storage.tsdb.path",
        str(tmp / "omtsdb"),
        f"--web.listen-address=127.0.0.1:{port}",
        "--log.level=warning",
    ]
    return _proc(args, f"http://127.0.0.1:{port}/-/ready", env)


def _query(port: int, q: str, t: float) -> list[Any]:
    url = f"http://127.0.0.1:{port}/api/v1/query?" + urllib.parse.urlencode({"query": q, "time": t})
    with urllib.request.urlopen(url, timeout=10) as r:
        body = json.load(r)
    assert body["status"] == "success", body
    return sorted(
        (
            (tuple(sorted(x["metric"].items())), float(x["value"][1]))
            for x in body["data"]["result"]
        ),
        key=lambda p: p[0],
    )


def _prometheus(tmp: Path, port: int, config: str) -> Any:
    cfg = tmp / "prometheus.yml"
    cfg.write_text(config)
    return _proc(
        [
            str(peer_bin("prometheus")),
            "--config.file",
            str(cfg),
            "--storage.tsdb.path",
            str(tmp / "prom"),
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        f"http://127.0.0.1:{port}/-/ready",
    )


def test_prometheus_remote_write_from_node_exporter_agrees() -> None:
    ne_bin = peer_bin("prometheus-node-exporter")
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        op, pp, np_ = free_port(), free_port(), free_port()
        cfg = f"""
global:
  scrape_interval: 1s
scrape_configs:
  - job_name: node
    static_configs: [{{targets: ["127.0.0.1:{np_}"]}}]
remote_write:
  - url: http://127.0.0.1:{op}/api/v1/write
    queue_config: {{batch_send_deadline: 1s, max_samples_per_send: 500}}
"""
        ne_args = [str(ne_bin), f"--web.listen-address=127.0.0.1:{np_}"]
        with (
            _omtsdb(tmp, op),
            _proc(ne_args, f"http://127.0.0.1:{np_}/metrics"),
            _prometheus(tmp, pp, cfg),
        ):
            deadline = time.monotonic() + 25
            t = 0.0
            while time.monotonic() < deadline:
                time.sleep(1)
                got = _query(op, "count(up)", time.time())
                if got and time.time() - _first_sample(op) >= 7:
                    t = math.floor(time.time()) - 3
                    break
            assert t, "no data reached omtsdb by remote write"
            for q in (
                'count by (__name__) ({__name__=~"node_(cpu|memory|load|network|filesystem).*"})',
                "sum(node_cpu_seconds_total)",
                'rate(node_cpu_seconds_total{mode="idle"}[4s])',
                "node_memory_MemTotal_bytes",
                "up",
            ):
                a, b = _query(op, q, t), _query(pp, q, t)
                assert a and [k for k, _ in a] == [k for k, _ in b], q
                for (_, va), (_, vb) in zip(a, b, strict=True):
                    assert va == vb or abs(va - vb) <= 1e-9 * max(abs(va), abs(vb)), (q, va, vb)


def _first_sample(port: int) -> float:
    now = time.time()
    res = _query(port, "min_over_time(timestamp(up)[60s:1s])", now)
    return float(res[0][1]) if res else now


def test_prometheus_remote_read_from_omtsdb() -> None:
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        op, pp = free_port(), free_port()
        cfg = f"""
global:
  scrape_interval: 1h
remote_read:
  - url: http://127.0.0.1:{op}/api/v1/read
    read_recent: true
"""
        now_ms = int(time.time() * 1000)
        ts = [now_ms - 600_000 + 15_000 * i for i in range(40)]
        series = [
            (
                {"__name__": "only_in_omtsdb", "k": str(j)},
                [(t, j * 1000.0 + i * 0.5) for i, t in enumerate(ts)],
            )
            for j in range(3)
        ]
        with _omtsdb(tmp, op), _prometheus(tmp, pp, cfg):
            req = urllib.request.Request(
                f"http://127.0.0.1:{op}/api/v1/write",
                data=snappy(write_request_v1(series)),
                headers={"Content-Type": "application/x-protobuf", "Content-Encoding": "snappy"},
            )
            with urllib.request.urlopen(req, timeout=10) as r:
                assert r.status == 204
            t = ts[-1] / 1000
            for q in (
                "only_in_omtsdb",
                "sum(rate(only_in_omtsdb[2m]))",
                'only_in_omtsdb{k="2"} offset 1m',
            ):
                a, b = _query(op, q, t), _query(pp, q, t)
                assert b, q
                assert a == b, q
            # a range: every sample came through the chunk stream intact
            url = f"http://127.0.0.1:{pp}/api/v1/query?" + urllib.parse.urlencode(
                {"query": 'only_in_omtsdb{k="1"}[20m]', "time": t}
            )
            with urllib.request.urlopen(url, timeout=10) as r:
                vals = json.load(r)["data"]["result"][0]["values"]
            assert [(round(float(x) * 1000), float(y)) for x, y in vals] == series[1][1]
