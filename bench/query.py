"""Query latency side by side with Prometheus 3.5 on the same data.

    python -m bench.query [--hosts 26] [--hours 6] [--runs 5]

Generates the node_exporter-like fleet (bench.generators; ~38 series per host, 15 s scrapes),
backfills it into Prometheus with promtool and imports it into omtsdb, serves both on loopback,
asks both the same dashboard-style battery over HTTP, one request to each in turn (range
queries over the whole span at 60 s steps, and instant queries), checks that the answers are
equal (1e-9 relative), and prints median latencies and the ratio omtsdb/Prometheus (< 1 means
omtsdb is faster).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from bench.generators import T0, write

BIN = Path(os.environ.get("OMTSDB_PEER_BIN", "/opt/prom3/usr/bin"))

BATTERY = [
    "sum by (mode) (rate(node_cpu_seconds_total[5m]))",
    "sum by (instance) (rate(node_network_receive_bytes_total[5m]))",
    "topk(5, rate(node_network_transmit_bytes_total[5m]))",
    "histogram_quantile(0.99, sum by (le) (rate(http_request_duration_seconds_bucket[5m])))",
    "histogram_quantile(0.9, sum by (instance, le) "
    "(rate(http_request_duration_seconds_bucket[5m])))",
    "avg_over_time(node_load1[15m])",
    "max_over_time(node_hwmon_temp_celsius[30m])",
    '1 - sum by (instance) (rate(node_cpu_seconds_total{mode="idle"}[5m])) '
    "/ sum by (instance) (rate(node_cpu_seconds_total[5m]))",
    "rate(http_request_duration_seconds_sum[5m]) / rate(http_request_duration_seconds_count[5m])",
    "node_memory_MemAvailable_bytes * on(instance) group_left() up",
    "max_over_time(rate(node_network_receive_bytes_total[5m])[30m:1m])",
    "quantile_over_time(0.95, node_load1[10m])",
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def fetch(base: str, path: str, params: dict[str, Any]) -> bytes:
    url = f"{base}{path}?{urllib.parse.urlencode(params)}"
    with urllib.request.urlopen(url, timeout=300) as r:
        body: bytes = r.read()
        return body


def wait(base: str) -> None:
    for _ in range(300):
        try:
            urllib.request.urlopen(base + "/-/ready", timeout=2)
            return
        except OSError:
            time.sleep(0.2)
    raise TimeoutError(base)


def close(a: float, b: float) -> bool:
    if math.isnan(a) and math.isnan(b):
        return True
    if a == b:
        return True
    return abs(a - b) <= 1e-9 * max(abs(a), abs(b))


def canon(js: Any) -> dict[str, list[tuple[float, float]]]:
    out = {}
    for s in js["data"]["result"]:
        pts = s.get("values") or [s["value"]]
        out[json.dumps(s["metric"], sort_keys=True)] = [(float(t), float(v)) for t, v in pts]
    return out


def same(a: Any, b: Any) -> bool:
    ca, cb = canon(a), canon(b)
    if ca.keys() != cb.keys():
        return False
    for k in ca:
        if len(ca[k]) != len(cb[k]):
            return False
        for (t1, v1), (t2, v2) in zip(ca[k], cb[k], strict=True):
            if t1 != t2 or not close(v1, v2):
                return False
    return True


def exact(a: Any, b: Any) -> bool:
    """The same series with the same value strings: equal to the last digit."""

    def raw(js: Any) -> dict[str, Any]:
        return {
            json.dumps(s["metric"], sort_keys=True): s.get("values") or [s["value"]]
            for s in js["data"]["result"]
        }

    return raw(a) == raw(b)


def timed(
    bases: tuple[str, str], path: str, params: dict[str, Any], runs: int
) -> tuple[tuple[float, float], tuple[Any, Any]]:
    """Median time from sending the request to holding the whole response body, for both
    servers, asked in turn (so that both see the same machine load); the client's JSON
    decoding is not the server's latency and is done afterwards."""
    bodies = [fetch(b, path, params) for b in bases]  # warm-up
    times: tuple[list[float], list[float]] = ([], [])
    for _ in range(runs):
        for i, b in enumerate(bases):
            t0 = time.perf_counter()
            bodies[i] = fetch(b, path, params)
            times[i].append(time.perf_counter() - t0)
    return (
        (statistics.median(times[0]), statistics.median(times[1])),
        (json.loads(bodies[0]), json.loads(bodies[1])),
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--hosts", type=int, default=26)
    ap.add_argument("--hours", type=float, default=6)
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        f = Path(d) / "fleet.om"
        with f.open("w") as fh:
            ns, nsamp = write("fleet", fh, hosts=args.hosts, hours=args.hours)
        print(f"fleet: {ns} series, {nsamp} samples")
        subprocess.run(
            [
                str(BIN / "promtool"),
                "tsdb",
                "create-blocks-from",
                "openmetrics",
                str(f),
                f"{d}/prom",
            ],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        subprocess.run(
            [
                sys.executable,
                "-m",
                "omtsdb.cli.main",
                "import",
                str(f),
                "--storage.tsdb.path",
                f"{d}/omtsdb",
            ],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        cfg = Path(d) / "prometheus.yml"
        cfg.write_text("global:\n  scrape_interval: 15s\n")
        pp, op = free_port(), free_port()
        procs = [
            subprocess.Popen(
                [
                    str(BIN / "prometheus"),
                    f"--storage.tsdb.path={d}/prom",
                    "--storage.tsdb.retention.time=100y",
                    f"--config.file={cfg}",
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
                    f"--storage.tsdb.path={d}/omtsdb",
                    f"--web.listen-address=127.0.0.1:{op}",
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            ),
        ]
        try:
            prom, ours = f"http://127.0.0.1:{pp}", f"http://127.0.0.1:{op}"
            wait(prom)
            wait(ours)
            start = T0 / 1000 + 1800
            end = T0 / 1000 + args.hours * 3600
            rr, ir, mism, inexact = [], [], 0, 0
            print(f"{'query':70s} {'kind':7s} {'prom ms':>9s} {'omtsdb ms':>9s} {'ratio':>6s}")
            for q in BATTERY:
                for kind, path, params in (
                    (
                        "range",
                        "/api/v1/query_range",
                        {"query": q, "start": start, "end": end, "step": 60},
                    ),
                    ("instant", "/api/v1/query", {"query": q, "time": end - 600}),
                ):
                    (tp, to), (a, b) = timed((prom, ours), path, params, args.runs)
                    ok = same(a, b)
                    mism += not ok
                    inexact += ok and not exact(a, b)
                    (rr if kind == "range" else ir).append(to / tp)
                    print(
                        f"{q[:70]:70s} {kind:7s} {tp * 1e3:9.1f} {to * 1e3:9.1f} {to / tp:6.2f}"
                        f"{'' if ok else '  ANSWERS DIFFER'}"
                    )
            print(
                f"median ratio omtsdb/Prometheus: range {statistics.median(rr):.2f}, "
                f"instant {statistics.median(ir):.2f}; answers differing: {mism}; "
                f"equal within 1e-9 but not to the last digit: {inexact}"
            )
        finally:
            for p in procs:
                p.terminate()
                p.wait(timeout=30)


if __name__ == "__main__":
    main()
