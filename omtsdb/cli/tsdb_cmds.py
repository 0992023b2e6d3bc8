"""``omtsdb import``, ``omtsdb tsdb dump`` and ``omtsdb tsdb analyze``."""

from __future__ import annotations

import argparse
import mmap
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from omtsdb.errors import BadDataError
from omtsdb.model.exposition import NO_TS, parse, write_openmetrics
from omtsdb.model.selector import parse_selector
from omtsdb.tsdb.analyze import analyze, render
from omtsdb.tsdb.db import DB, DBOptions
from omtsdb.tsdb.head import I64_MAX, I64_MIN
from omtsdb.tsdb.importer import import_columns

_Sub = "argparse._SubParsersAction[argparse.ArgumentParser]"


def parse_time_ms(s: str) -> int:
    """A time flag: unix milliseconds (as promtool's --min-time/--max-time) or RFC 3339."""
    try:
        return int(s)
    except ValueError:
        pass
    from datetime import datetime

    try:
        dt = datetime.fromisoformat(s.replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid time {s!r}") from None
    return int(dt.timestamp() * 1000)


def register(sub: Any) -> None:
    p = sub.add_parser("import", help="import OpenMetrics/Prometheus text with timestamps")
    p.add_argument("file", help="input file, or - for stdin")
    p.add_argument("--storage.tsdb.path", dest="path", default="data")
    p.set_defaults(func=cmd_import)

    t = sub.add_parser("tsdb", help="inspect a data directory")
    tsub = t.add_subparsers(dest="tsdb_command", metavar="CMD", required=True)
    d = tsub.add_parser("dump", help="every stored sample as OpenMetrics text")
    d.add_argument("path", metavar="DIR")
    d.add_argument("--match", action="append", default=[], help="series selector (repeatable)")
    d.add_argument("--min-time", type=parse_time_ms, default=I64_MIN)
    d.add_argument("--max-time", type=parse_time_ms, default=I64_MAX)
    d.add_argument(
        "--interop", action="store_true", help="write every NaN as plain NaN (no payloads)"
    )
    d.set_defaults(func=cmd_dump)
    a = tsub.add_parser("analyze", help="series, samples, cardinality, bytes per sample")
    a.add_argument("path", metavar="DIR")
    a.add_argument("--limit", type=int, default=20)
    a.set_defaults(func=cmd_analyze)


def _open_existing(path: str) -> DB:
    p = Path(path)
    if not p.is_dir():
        raise BadDataError(f"{path}: no such data directory")
    return DB.open(p, DBOptions())


def _map_file(path: Path) -> bytes:
    """The file's bytes, memory-mapped (pages are read as the parser reaches them; nothing is
    copied whole). ``mmap`` offers what the parser uses of ``bytes``."""
    with open(path, "rb") as f:
        if f.seek(0, 2) == 0:
            return b""
        return mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)  # type: ignore[return-value]


def cmd_import(args: argparse.Namespace) -> int:
    t0 = time.perf_counter()
    if args.file == "-":
        data = sys.stdin.buffer.read()
    else:
        try:
            data = _map_file(Path(args.file))
        except OSError as e:
            raise BadDataError(f"{args.file}: {e.strerror}") from None
    exp = parse(data)
    if len(exp) and np.any(exp.ts == NO_TS):
        first = int(np.flatnonzero(exp.ts == NO_TS)[0])
        raise BadDataError(f"sample {first + 1} has no timestamp; import needs timestamps")
    path = Path(args.path)
    path.mkdir(parents=True, exist_ok=True)
    rep = import_columns(path, exp.series, exp.series_idx, exp.ts, exp.vs)
    with DB.open(path, DBOptions()) as db:
        db.compact()  # merge blocks that overlap data already there
    dt = time.perf_counter() - t0
    print(
        f"imported {rep.series} series, {rep.samples} samples into {rep.blocks} blocks "
        f"in {dt:.2f}s ({rep.samples / dt if dt else 0:,.0f} samples/s)"
    )
    if rep.duplicates:
        print(
            f"rejected {rep.duplicates} samples: duplicate timestamps with another value "
            f"(first: {rep.first_error})",
            file=sys.stderr,
        )
        return 1
    return 0


def cmd_dump(args: argparse.Namespace) -> int:
    selectors = [parse_selector(m) for m in args.match] or [[]]
    out = sys.stdout
    with _open_existing(args.path) as db:
        seen: set[object] = set()

        def series() -> Any:
            for ms in selectors:
                for s in db.iter_series(args.min_time, args.max_time, ms):
                    if s.labels in seen:
                        continue
                    seen.add(s.labels)
                    yield s.labels, s.ts, s.vs

        for chunk in write_openmetrics(series(), exact=not args.interop):
            out.write(chunk)
    out.flush()
    return 0


def cmd_analyze(args: argparse.Namespace) -> int:
    with _open_existing(args.path) as db:
        print(render(analyze(db), args.limit))
    return 0
