"""Head append throughput and memory per active series.

    python -m bench.append [--series 10000] [--wal] [--rss-series 20000]

Prints samples/s for (a) 10k series x 1 sample per batch (a scrape or a remote-write request is
one batch), (b) 1k series x 100 samples per batch, and (c) resident memory per active series
holding 2 h of 15 s samples (480 samples each), measured in a fresh subprocess.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time

import numpy as np

from omtsdb.model.labels import Labels
from omtsdb.tsdb.db import DB, DBOptions


def make_series(n: int) -> list[Labels]:
    return [
        Labels(
            {
                "__name__": f"bench_metric_{i % 50}",
                "instance": f"host-{i // 50}:9100",
                "job": "node",
                "mode": ("user", "system", "idle", "iowait")[i % 4],
            }
        )
        for i in range(n)
    ]


def run_batches(db: DB, series: list[Labels], per_batch: int, batches: int) -> float:
    """Append ``batches`` batches of ``per_batch`` samples for every series; samples/s."""
    n = len(series)
    idx = np.repeat(np.arange(n, dtype=np.int64), per_batch)
    rng = np.random.default_rng(1)
    t0 = 1_700_000_000_000
    start = time.perf_counter()
    for b in range(batches):
        base = t0 + b * per_batch * 15_000
        ts = np.tile(base + np.arange(per_batch, dtype=np.int64) * 15_000, n)
        vs = rng.random(n * per_batch)
        app = db.appender()
        app.append_columns(series, idx, ts, vs)
        app.commit()
    dt = time.perf_counter() - start
    return n * per_batch * batches / dt


def rss_kb() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def rss_child(nseries: int) -> None:
    """Subprocess body: RSS delta per series after 2 h of 15 s samples."""
    series = make_series(nseries)
    before = rss_kb()
    db = DB.open(None, DBOptions())
    idx = np.arange(nseries, dtype=np.int64)
    rng = np.random.default_rng(2)
    t0 = 1_700_000_000_000
    level = rng.random(nseries) * 100
    for k in range(480):  # 2 h of 15 s scrapes
        ts = np.full(nseries, t0 + k * 15_000, np.int64)
        vs = np.round(level + rng.normal(0, 1, nseries), 2)
        app = db.appender()
        app.append_columns(series, idx, ts, vs)
        app.commit()
    del series
    after = rss_kb()
    print(json.dumps({"bytes_per_series": (after - before) * 1024 / nseries}))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--series", type=int, default=10_000)
    ap.add_argument("--wal", action="store_true", help="write a WAL (fsync per commit)")
    ap.add_argument("--rss-series", type=int, default=20_000)
    ap.add_argument("--rss-child", type=int, default=0, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.rss_child:
        rss_child(args.rss_child)
        return
    with tempfile.TemporaryDirectory() as d:
        path = d if args.wal else None
        db = DB.open(path, DBOptions())
        s10k = make_series(args.series)
        run_batches(db, s10k, 1, 3)  # warm-up: series creation
        r1 = run_batches(db, s10k, 1, 60)
        print(f"{args.series} series x 1 sample/batch: {r1:,.0f} samples/s")
        db.close()
        db = DB.open(None if not args.wal else d + "/b", DBOptions())
        s1k = make_series(1000)
        run_batches(db, s1k, 100, 1)
        r2 = run_batches(db, s1k, 100, 20)
        print(f"1000 series x 100 samples/batch: {r2:,.0f} samples/s")
        db.close()
    out = subprocess.run(
        [sys.executable, "-m", "bench.append", "--rss-child", str(args.rss_series)],
        capture_output=True,
        text=True,
        check=True,
    )
    per = json.loads(out.stdout)["bytes_per_series"]
    print(f"RSS per active series (2 h of 15 s samples, {args.rss_series} series): {per:,.0f} B")


if __name__ == "__main__":
    main()
