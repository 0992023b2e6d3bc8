"""Side by side with the real Prometheus 3.5: the same data backfilled into both, the same
queries asked of both over HTTP (../shared/peer/promdiff.py compares the answers)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import ROOT, SHARED, peer_bin, require

pytestmark = pytest.mark.slow  # a real peer or many trials: seconds per test

HERE = Path(__file__).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_ready(url: str, proc: subprocess.Popen[bytes], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{url}: server exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(0.3)
    raise TimeoutError(url)


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    prometheus = peer_bin("prometheus")
    promtool = peer_bin("promtool")
    tmp = tmp_path_factory.mktemp("peer")
    data = tmp / "fleet.om"
    subprocess.run(
        [sys.executable, "-m", "bench.generators", "fleet", "--hosts", "3", "--hours", "5"],
        cwd=ROOT,
        stdout=data.open("w"),
        check=True,
        timeout=120,
    )
    subprocess.run(
        [str(promtool), "tsdb", "create-blocks-from", "openmetrics", str(data), str(tmp / "prom")],
        check=True,
        capture_output=True,
        timeout=120,
    )
    subprocess.run(
        [
            sys.executable,
            "-m",
            "omtsdb.cli.main",
            "import",
            str(data),
            "--storage.tsdb.path",
            str(tmp / "omtsdb"),
        ],
        cwd=ROOT,
        check=True,
        capture_output=True,
        timeout=120,
    )
    cfg = tmp / "prometheus.yml"
    cfg.write_text("global:\n  scrape_interval: 15s\n")
    pp, op = free_port(), free_port()
    procs = [
        subprocess.Popen(
            [
                str(prometheus),
                "--storage.tsdb.path",
                str(tmp / "prom"),
                "--storage.tsdb.retention.time=100y",
                "--config.file",
                str(cfg),
                f"--web.listen-address=127.0.0.1:{pp}",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        ),
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "omtsdb.cli.main",
                "serve",
                "--storage.tsdb.path",
                str(tmp / "omtsdb"),
                "--web.listen-address",
                f"127.0.0.1:{op}",
            ],
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        ),
    ]
    try:
        wait_ready(f"http://127.0.0.1:{pp}/-/ready", procs[0])
        wait_ready(f"http://127.0.0.1:{op}/-/ready", procs[1])
        yield f"http://127.0.0.1:{pp}", f"http://127.0.0.1:{op}"
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()


def test_same_answers_as_prometheus(servers: tuple[str, str]) -> None:
    promdiff = SHARED / "peer" / "promdiff.py"
    require(promdiff.is_file(), f"{promdiff} is absent")
    ref, test = servers
    r = subprocess.run(
        [
            sys.executable,
            str(promdiff),
            "--ref",
            ref,
            "--test",
            test,
            "--queries",
            str(HERE / "peer_queries.txt"),
            "--start",
            "1700000000",
            "--end",
            "1700016000",
            "--step",
            "60",
            "--times",
            "3",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ},
    )
    last = r.stdout.strip().splitlines()[-1]
    assert last.endswith(" 0 failed"), r.stdout[-3000:]


def test_parameter_errors_match_prometheus(servers: tuple[str, str]) -> None:
    import json
    import urllib.error
    import urllib.parse

    ref, test = servers
    cases = [
        ("query", {"query": "up", "time": "x"}),
        ("query_range", {"query": "up", "start": "10", "end": "5", "step": "1"}),
        ("query_range", {"query": "up", "start": "0", "end": "1", "step": "0"}),
        ("query_range", {"query": "up", "start": "0", "end": "100000", "step": "1"}),
        # the point limit is (end - start) / step > 11000: 11,001 points are allowed
        ("query_range", {"query": "1", "start": "0", "end": "11000", "step": "1"}),
        ("query_range", {"query": "1", "start": "0", "end": "11001", "step": "1"}),
        ("query", {"query": "1", "time": "100", "timeout": "abc"}),
        ("query", {"query": "1", "time": "100", "timeout": "-1s"}),
        ("query", {"query": "rate(up)"}),
        ("query", {"query": "1 and 2"}),
        ("query", {"query": "0.1+0.2", "time": "100"}),
        ("query", {"query": "1e21", "time": "100"}),
        ("query", {"query": '"str"', "time": "100.5"}),
    ]

    def ask(base: str, ep: str, params: dict[str, str]) -> tuple[int, dict[str, object]]:
        url = f"{base}/api/v1/{ep}?{urllib.parse.urlencode(params)}"
        try:
            with urllib.request.urlopen(url, timeout=30) as resp:
                return resp.status, json.load(resp)
        except urllib.error.HTTPError as e:
            return e.code, json.load(e)

    for ep, params in cases:
        a, b = ask(ref, ep, params), ask(test, ep, params)
        assert a == b, (ep, params, a, b)
