"""``select_batch`` (blocks, merged sources) gives exactly what ``select`` gives."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from omtsdb.model import Labels, Matcher, MatchType
from omtsdb.model.samples import STALE_NAN
from omtsdb.storage.interface import SeriesBatch, SeriesData
from omtsdb.tsdb.block.reader import Block
from omtsdb.tsdb.block.writer import write_block
from omtsdb.tsdb.db import DB, DBOptions
from omtsdb.tsdb.querier import BlockQuerier, MergeQuerier

HOUR = 3_600_000
EQ, RE = MatchType.EQ, MatchType.RE
MATCHERS = [
    [Matcher(RE, "__name__", "m.*")],
    [Matcher(EQ, "__name__", "m1")],
    [Matcher(RE, "host", "h1.*")],
    [Matcher(EQ, "nope", "x")],
]


def series(n: int, t0: int, t1: int, step: int, seed: int, first: int = 0) -> list:  # type: ignore[type-arg]
    rng = np.random.default_rng(seed)
    out = []
    for i in range(first, first + n):
        lb = Labels({"__name__": f"m{i % 3}", "host": f"h{i}"})
        ts = np.arange(t0 + i, t1, step, dtype=np.int64)
        vs = np.round(rng.random(ts.size) * 100, 2)
        vs[::17] = STALE_NAN
        out.append((lb, ts, vs))
    out.sort(key=lambda s: s[0].sort_key())
    return out


def same(batch: SeriesBatch, want: list[SeriesData]) -> None:
    got = batch.series()
    assert [s.labels for s in got] == [s.labels for s in want]
    for a, b in zip(got, want, strict=True):
        assert np.array_equal(a.ts, b.ts)
        assert np.array_equal(a.vs.view(np.uint64), b.vs.view(np.uint64))
    assert batch.offsets[0] == 0 and batch.offsets[-1] == batch.ts.size == batch.vs.size


RANGES = [
    (0, 10 * HOUR),
    (HOUR // 2, HOUR),
    (3 * HOUR - 7, 3 * HOUR + 7),
    (1, 2),
    (9 * HOUR, 20 * HOUR),
    (3 * HOUR // 2, 3 * HOUR // 2 + 600_000),  # short overlapping pieces
]


def test_block_select_batch(tmp_path: Path) -> None:
    for chunk_samples in (100, 100_000):  # several chunks a series, and one
        d = tmp_path / str(chunk_samples)
        data = series(25, 0, 4 * HOUR, 15_000, 1)
        meta = write_block(d, data, min_time=0, max_time=4 * HOUR, chunk_samples=chunk_samples)
        assert meta is not None
        b = Block(d / meta.ulid)
        for ms in MATCHERS:
            for mint, maxt in RANGES:
                same(b.select_batch(ms, mint, maxt), b.select(ms, mint, maxt))


def test_merged_select_batch_with_overlaps(tmp_path: Path) -> None:
    parts = [
        (series(20, 0, 2 * HOUR, 15_000, 1), 0, 2 * HOUR),
        (series(20, 2 * HOUR, 4 * HOUR, 15_000, 2, first=5), 2 * HOUR, 4 * HOUR),
        # overlapping the others, some equal timestamps with other values, other series
        (series(12, HOUR, 3 * HOUR, 10_000, 3, first=10), HOUR, 3 * HOUR),
    ]
    blocks = []
    for i, (data, a, z) in enumerate(parts):
        d = tmp_path / str(i)
        meta = write_block(d, data, min_time=a, max_time=z, chunk_samples=50 + 30 * i)
        assert meta is not None
        blocks.append(Block(d / meta.ulid))
    for order in ([0, 1, 2], [2, 0, 1], [1, 2]):
        q = MergeQuerier([BlockQuerier(blocks[i]) for i in order])
        for ms in MATCHERS:
            for mint, maxt in RANGES:
                same(q.select_batch(ms, mint, maxt), q.select(ms, mint, maxt))


def test_db_select_batch_with_head(tmp_path: Path) -> None:
    with DB.open(tmp_path, DBOptions(fsync=False)) as db:
        app = db.appender()
        for lb, ts, vs in series(10, 0, HOUR, 15_000, 4):
            app.append(lb, ts, vs)
        app.commit()
        q = db.querier(0, 2 * HOUR)
        for ms in MATCHERS:
            for mint, maxt in RANGES:
                same(q.select_batch(ms, mint, maxt), q.select(ms, mint, maxt))
