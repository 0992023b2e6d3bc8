"""Metadata look-ups: what ``/api/v1/series`` and the label endpoints cost, in samples decoded
and milliseconds, over a TSDB of ``--series`` series x ``--samples`` samples (blocks + head).

    python -m bench.series [--series 200] [--samples 20000] [--runs 5]

Samples decoded are counted at the two decoders (block chunk batches, head chunks). Run it
with ``PYTHONPATH`` at two trees to compare them (it also runs on trees before the
composition root, through ``api.app.create_app``).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from aiohttp.test_utils import TestClient, TestServer

from omtsdb.model.labels import Labels
from omtsdb.promql.engine import Engine
from omtsdb.tsdb import chunks
from omtsdb.tsdb.block import reader
from omtsdb.tsdb.db import DB, DBOptions

T0 = 1_700_000_000_000
DECODED = [0]


def _count_decoders() -> None:
    batch, head = reader.decode_batch, chunks.decode_st

    def counted_batch(jobs: Any) -> Any:
        out = batch(jobs)
        DECODED[0] += sum(int(t.size) for t in out)
        return out

    def counted_head(c: bytes) -> Any:
        got = head(c)
        DECODED[0] += int(got[0].size)
        return got

    reader.decode_batch = counted_batch  # type: ignore[assignment]
    chunks.decode_st = counted_head  # type: ignore[assignment]


def _app(db: DB) -> Any:
    try:
        from omtsdb.compose import build_app
    except ImportError:  # a tree from before the composition root
        from omtsdb.api.app import create_app

        return create_app(db, Engine())  # type: ignore[call-arg, arg-type]
    return build_app(db, Engine())


def _load(path: Path, n_series: int, n_samples: int) -> DB:
    db = DB.open(path, DBOptions(fsync=False))
    series = [Labels({"__name__": f"m{i % 10}", "i": str(i), "job": "j"}) for i in range(n_series)]
    step = 2000
    for a in range(0, n_samples, step):
        k = min(step, n_samples - a)
        ts = T0 + 15_000 * np.arange(a, a + k, dtype=np.int64)
        app = db.appender()
        app.append_columns(
            series,
            np.repeat(np.arange(n_series), k),
            np.tile(ts, n_series),
            np.random.default_rng(a).random(k * n_series),
        )
        app.commit()
    db.wait_for_compaction()
    return db


async def _measure(db: DB, runs: int, n_samples: int) -> None:
    end = (T0 + 15_000 * n_samples) / 1000
    client: TestClient[Any, Any] = TestClient(TestServer(_app(db), host="127.0.0.1"))
    await client.start_server()
    try:
        for name, path, params in (
            ("series", "/api/v1/series", {"match[]": '{__name__=~"m.*"}'}),
            ("labels", "/api/v1/labels", {"match[]": '{__name__=~"m.*"}'}),
            ("label values", "/api/v1/label/i/values", {"match[]": '{__name__=~"m.*"}'}),
        ):
            for p in (params, {**params, "start": str(end - 3600), "end": str(end)}):
                times, decoded = [], []
                for _ in range(runs):
                    for b in db.blocks:
                        b.forget_cached()
                    DECODED[0] = 0
                    t0 = time.perf_counter()
                    r = await client.get(path, params=p)
                    body = await r.json()
                    times.append(time.perf_counter() - t0)
                    decoded.append(DECODED[0])
                    assert r.status == 200, body
                span = "last hour" if "start" in p else "all time"
                print(
                    f"{name:13s} {span:9s} {len(body['data']):5d} results  "
                    f"{statistics.median(times) * 1e3:8.1f} ms  "
                    f"{statistics.median(decoded):>10,.0f} samples decoded"
                )
    finally:
        await client.close()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--series", type=int, default=200)
    ap.add_argument("--samples", type=int, default=20_000)
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    _count_decoders()
    with tempfile.TemporaryDirectory() as d:
        db = _load(Path(d), args.series, args.samples)
        print(
            f"{args.series} series x {args.samples} samples "
            f"({args.series * args.samples:,}): {len(db.blocks)} blocks + head"
        )
        try:
            asyncio.run(_measure(db, args.runs, args.samples))
        finally:
            db.close()


if __name__ == "__main__":
    main()
