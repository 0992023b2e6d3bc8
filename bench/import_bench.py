"""Import throughput, side by side with ``promtool tsdb create-blocks-from openmetrics``.

    python -m bench.import_bench [--set fleet] [--hosts 10] [--hours 6] [--runs 3]

Generates a deterministic OpenMetrics file (bench.generators), then times the whole command of
each tool (process start included) on the same file, best of ``--runs``, and prints samples/s
and the ratio omtsdb/promtool (> 1 means omtsdb is faster).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.generators import write

PROMTOOL = Path(os.environ.get("OMTSDB_PEER_BIN", "/opt/prom3/usr/bin")) / "promtool"


def best_of(cmd: list[str], out_dir: Path, runs: int) -> float:
    best = float("inf")
    for _ in range(runs):
        shutil.rmtree(out_dir, ignore_errors=True)
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
        best = min(best, time.perf_counter() - t0)
    return best


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--set", default="fleet")
    ap.add_argument("--hosts", type=int, default=10)
    ap.add_argument("--hours", type=float, default=6)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        f = Path(d) / "in.om"
        kw = {"hours": args.hours}
        if args.set != "avalanche":
            kw["hosts"] = args.hosts
        with open(f, "w") as fh:
            ns, nsamp = write(args.set, fh, **kw)
        print(f"{args.set}: {ns} series, {nsamp} samples, {f.stat().st_size / 1e6:.1f} MB")
        ours = best_of(
            [
                sys.executable,
                "-m",
                "omtsdb.cli.main",
                "import",
                str(f),
                "--storage.tsdb.path",
                f"{d}/omtsdb",
            ],
            Path(d) / "omtsdb",
            args.runs,
        )
        print(f"omtsdb import:  {ours:.2f} s  {nsamp / ours:,.0f} samples/s")
        if not PROMTOOL.exists():
            print("promtool not installed (../shared/peer/install-prometheus.sh); no ratio")
            return
        theirs = best_of(
            [str(PROMTOOL), "tsdb", "create-blocks-from", "openmetrics", str(f), f"{d}/prom"],
            Path(d) / "prom",
            args.runs,
        )
        print(f"promtool:       {theirs:.2f} s  {nsamp / theirs:,.0f} samples/s")
        print(f"speed ratio omtsdb/promtool: {theirs / ours:.2f}")


if __name__ == "__main__":
    main()
