"""Bytes per sample on disk: omtsdb vs Prometheus 3.5 (and VictoriaMetrics where installed).

Each data set is written as OpenMetrics text with timestamps by ``bench.generators``, then
    - omtsdb: ``omtsdb import FILE --storage.tsdb.path DIR`` (blocks, compacted); we count the
      whole data directory and, separately, chunks + index;
    - Prometheus: ``promtool tsdb create-blocks-from openmetrics FILE DIR``; we count the block
      directories (chunks + index + meta + tombstones), i.e. the whole output;
    - VictoriaMetrics (binary ``victoria-metrics`` on PATH): started on loopback with a fresh
      ``-storageDataPath``, fed the text through ``/api/v1/import/prometheus``, forced to flush,
      and its data directory measured.

    python -m bench.compression [--sets fleet,tsbs,avalanche] [--small]
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from bench import generators
from omtsdb.model.exposition import parse
from omtsdb.tsdb.db import DB, DBOptions
from omtsdb.tsdb.importer import import_columns

SIZES = {
    "fleet": {"hosts": 10, "hours": 48},
    "tsbs": {"hosts": 50, "hours": 24},
    "avalanche": {"series": 500, "hours": 24},
}
SMALL = {
    "fleet": {"hosts": 3, "hours": 26},
    "tsbs": {"hosts": 10, "hours": 6},
    "avalanche": {"series": 100, "hours": 6},
}


def du(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def peer_bin(name: str) -> str | None:
    cand = [os.environ.get("OMTSDB_PEER_BIN", ""), "/opt/prom3/usr/bin"]
    for d in cand:
        if d and (Path(d) / name).exists():
            return str(Path(d) / name)
    return shutil.which(name)


def omtsdb_bytes(text: Path, out: Path) -> tuple[int, int, int]:
    exp = parse(text.read_bytes())
    rep = import_columns(out, exp.series, exp.series_idx, exp.ts, exp.vs)
    with DB.open(out, DBOptions()) as db:
        db.compact()
    blocks = [p for p in out.iterdir() if p.is_dir() and p.name != "wal"]
    chunks_index = sum(
        (b / f).stat().st_size for b in blocks for f in ("chunks", "index") if (b / f).exists()
    )
    return rep.samples, du(out), chunks_index


def verify_lossless(path: Path, series: Iterable[generators.Series]) -> None:
    """Every generated sample must read back bit-exactly (the text round trip of the values
    is exact: the writer prints the shortest repr that parses back to the same float)."""
    with DB.open(path, DBOptions()) as db:
        got = {s.labels: s for s in db.iter_series()}
    for lb, ts, vs in series:
        s = got.pop(lb)
        if not (
            np.array_equal(s.ts, ts) and np.array_equal(s.vs.view(np.uint64), vs.view(np.uint64))
        ):
            raise AssertionError(f"{lb}: samples differ after the round trip")
    if got:
        raise AssertionError(f"{len(got)} unexpected series")


def prometheus_bytes(text: Path, out: Path) -> int | None:
    promtool = peer_bin("promtool")
    if promtool is None:
        return None
    subprocess.run(
        [promtool, "tsdb", "create-blocks-from", "openmetrics", str(text), str(out)],
        check=True,
        capture_output=True,
    )
    return du(out)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def victoria_bytes(text: Path, out: Path) -> int | None:
    vm = shutil.which("victoria-metrics") or shutil.which("victoria-metrics-prod")
    if vm is None:
        return None
    port = _free_port()
    proc = subprocess.Popen(
        [
            vm,
            f"-storageDataPath={out}",
            f"-httpListenAddr=127.0.0.1:{port}",
            "-retentionPeriod=100y",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(100):
            try:
                urllib.request.urlopen(base + "/health", timeout=1).read()
                break
            except OSError:
                time.sleep(0.1)
        # VictoriaMetrics' text importer takes millisecond timestamps as Prometheus text does
        urllib.request.urlopen(
            urllib.request.Request(base + "/api/v1/import/prometheus", data=text.read_bytes()),
            timeout=600,
        ).read()
        urllib.request.urlopen(base + "/internal/force_flush", timeout=60).read()
        urllib.request.urlopen(base + "/internal/force_merge", timeout=600).read()
        time.sleep(5)
    finally:
        proc.terminate()
        proc.wait(timeout=60)
    return du(out / "data") if (out / "data").exists() else du(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sets", default="fleet,tsbs,avalanche")
    ap.add_argument("--small", action="store_true", help="small data sets (a quick check)")
    args = ap.parse_args()
    sizes = SMALL if args.small else SIZES
    rows = []
    with tempfile.TemporaryDirectory(prefix="omtsdb-compression-") as tmp:
        for name in args.sets.split(","):
            text = Path(tmp) / f"{name}.om"
            with open(text, "w") as f:
                nser, nsamp = generators.write(name, f, **sizes[name])
            samples, om_all, om_ci = omtsdb_bytes(text, Path(tmp) / f"{name}-omtsdb")
            assert samples == nsamp, (samples, nsamp)
            verify_lossless(Path(tmp) / f"{name}-omtsdb", generators.SETS[name](**sizes[name]))
            prom = prometheus_bytes(text, Path(tmp) / f"{name}-prom")
            vm = victoria_bytes(text, Path(tmp) / f"{name}-vm")
            rows.append((name, nser, nsamp, om_all, om_ci, prom, vm))
            text.unlink()
    print(
        "| set | series | samples | omtsdb B/sample (dir) | omtsdb chunks+index | "
        "Prometheus B/sample | ratio | VictoriaMetrics B/sample | ratio |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for name, nser, nsamp, om_all, om_ci, prom, vm in rows:
        p = f"{prom / nsamp:.3f} | {om_all / prom:.2f}" if prom else "n/a | n/a"
        v = f"{vm / nsamp:.3f} | {om_all / vm:.2f}" if vm else "not installed | n/a"
        om = f"{om_all / nsamp:.3f} | {om_ci / nsamp:.3f}"
        print(f"| {name} | {nser} | {nsamp} | {om} | {p} | {v} |")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
