"""Blocks: write/read, partial decoding, head cutting, compaction, retention, crash safety."""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from omtsdb.model import Labels, Matcher, MatchType
from omtsdb.model.samples import STALE_NAN
from omtsdb.tsdb.block import reader as block_reader
from omtsdb.tsdb.block.reader import Block
from omtsdb.tsdb.block.writer import write_block
from omtsdb.tsdb.db import DB, DBOptions
from omtsdb.tsdb.importer import import_columns

HOUR = 3_600_000
EQ, NEQ, RE, NRE = MatchType.EQ, MatchType.NEQ, MatchType.RE, MatchType.NRE


def make_series(
    n: int, hours: float, t0: int = 0, seed: int = 0
) -> list[tuple[Labels, np.ndarray, np.ndarray]]:  # type: ignore[type-arg]
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        lb = Labels({"__name__": f"m{i % 3}", "host": f"h{i}", "dc": "ab"[i % 2]})
        ts = t0 + np.arange(0, int(hours * HOUR), 15_000, dtype=np.int64)
        vs = np.round(rng.random(ts.size) * 100, 2)
        vs[5] = STALE_NAN
        vs[6] = -0.0
        out.append((lb, ts, vs))
    out.sort(key=lambda s: s[0].sort_key())
    return out


def by_labels(series: list) -> dict:  # type: ignore[type-arg]
    return {s.labels: s for s in series}


def test_block_round_trip_selectors_and_labels(tmp_path: Path) -> None:
    data = make_series(30, 2)
    meta = write_block(tmp_path, data, min_time=0, max_time=2 * HOUR)
    assert meta is not None and meta.num_series == 30
    b = Block(tmp_path / meta.ulid)
    cases = [
        [Matcher(EQ, "__name__", "m1")],
        [Matcher(RE, "host", "h1.*"), Matcher(NEQ, "dc", "a")],
        [Matcher(NRE, "__name__", "m[01]"), Matcher(EQ, "dc", "")],
        [Matcher(EQ, "nope", "x")],
    ]
    for ms in cases:
        got = by_labels(b.select(ms, 1_000_000, 3_000_000))
        want = {lb: (ts, vs) for lb, ts, vs in data if all(m.matches(lb.get(m.name)) for m in ms)}
        assert set(got) == set(want)
        for lb, (ts, vs) in want.items():
            keep = (ts >= 1_000_000) & (ts <= 3_000_000)
            assert np.array_equal(got[lb].ts, ts[keep])
            assert np.array_equal(got[lb].vs.view(np.uint64), vs[keep].view(np.uint64))
    assert b.label_names([]) == {"__name__", "host", "dc"}
    assert b.label_values("dc", [Matcher(EQ, "__name__", "m0")]) == {"a", "b"}
    assert b.find(data[3][0]) == 3


def test_query_decodes_only_the_chunks_it_needs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = make_series(20, 24)  # 5760 samples a series: 3 chunks of 1920
    meta = write_block(tmp_path, data, min_time=0, max_time=24 * HOUR, chunk_samples=2048)
    assert meta is not None
    b = Block(tmp_path / meta.ulid)
    calls: list[int] = []
    real = block_reader.decode_batch

    def counting(jobs):  # type: ignore[no-untyped-def]
        calls.extend(len(j[0]) for j in jobs)
        return real(jobs)

    monkeypatch.setattr(block_reader, "decode_batch", counting)
    got = b.select([Matcher(RE, "__name__", "m.*")], 20 * HOUR, 21 * HOUR)
    assert len(got) == 20 and all(len(s) == 241 for s in got)
    # one chunk per series, not the whole day
    assert len(calls) == 20
    assert len(calls) * 2 < meta.num_chunks
    calls.clear()  # now cached
    again = b.select([Matcher(RE, "__name__", "m.*")], 20 * HOUR, 21 * HOUR)
    assert calls == [] and [s.labels for s in again] == [s.labels for s in got]


def test_head_cut_restart_and_wal_checkpoint(tmp_path: Path) -> None:
    opts = DBOptions(fsync=False)
    data = make_series(10, 7)
    with DB.open(tmp_path, opts) as db:
        for k in range(0, 7 * 240, 60):  # commits of 15 minutes
            app = db.appender()
            for lb, ts, vs in data:
                app.append(lb, ts[k : k + 60], vs[k : k + 60])
            app.commit()
        db.wait_for_compaction()
        assert db.compact_head() == 0
        blocks = [b.meta for b in db.blocks]
    assert [(m.min_time, m.max_time) for m in blocks] == [(0, 2 * HOUR), (2 * HOUR, 4 * HOUR)]
    assert any(p.name.startswith("checkpoint.") for p in (tmp_path / "wal").iterdir())
    with DB.open(tmp_path, opts) as db:
        assert db.head.mint >= 4 * HOUR
        got = by_labels(db.querier(0, 10 * HOUR).select([Matcher(RE, "host", ".+")], 0, 10 * HOUR))
        for lb, ts, vs in data:
            assert np.array_equal(got[lb].ts, ts)
            assert np.array_equal(got[lb].vs.view(np.uint64), vs.view(np.uint64))
        dumped = {s.labels: len(s) for s in db.iter_series()}
        assert dumped == {lb: ts.size for lb, ts, _ in data}


def test_compaction_merges_windows_and_overlaps(tmp_path: Path) -> None:
    data = make_series(5, 10)
    for a in range(0, 10 * HOUR, 2 * HOUR):
        part = [
            (lb, ts[(ts >= a) & (ts < a + 2 * HOUR)], vs[(ts >= a) & (ts < a + 2 * HOUR)])
            for lb, ts, vs in data
        ]
        write_block(tmp_path, part, min_time=a, max_time=a + 2 * HOUR, fsync=False)
    # an overlapping import of the same data plus one new series
    extra = (Labels({"__name__": "late", "host": "x"}), np.array([HOUR], np.int64), np.array([7.0]))
    import_columns(tmp_path, [extra[0]], np.zeros(1, np.int64), extra[1], extra[2], fsync=False)
    with DB.open(tmp_path, DBOptions(fsync=False)) as db:
        assert db.compact() >= 2
        ranges = sorted((b.meta.min_time, b.meta.max_time) for b in db.blocks)
        assert ranges[0] == (0, 8 * HOUR) and ranges[-1] == (8 * HOUR, 10 * HOUR)
        got = by_labels(db.querier(0, 10 * HOUR).select([Matcher(RE, "host", ".+")], 0, 10 * HOUR))
    assert len(got) == 6 and got[extra[0]].vs.tolist() == [7.0]
    for lb, ts, vs in data:
        assert np.array_equal(got[lb].ts, ts)
        assert np.array_equal(got[lb].vs.view(np.uint64), vs.view(np.uint64))
    assert len([p for p in tmp_path.iterdir() if p.name != "wal"]) == 2


def test_retention_by_time_and_size(tmp_path: Path) -> None:
    data = make_series(5, 6)
    for a in range(0, 6 * HOUR, 2 * HOUR):
        part = [
            (lb, ts[(ts >= a) & (ts < a + 2 * HOUR)], vs[(ts >= a) & (ts < a + 2 * HOUR)])
            for lb, ts, vs in data
        ]
        write_block(tmp_path, part, min_time=a, max_time=a + 2 * HOUR, fsync=False, origin="import")
    with DB.open(tmp_path, DBOptions(fsync=False, retention_ms=3 * HOUR)) as db:
        db._apply_retention()
        assert [b.meta.min_time for b in db.blocks] == [2 * HOUR, 4 * HOUR]
    one = Block(next(p for p in tmp_path.iterdir() if p.name != "wal")).size_bytes()
    with DB.open(tmp_path, DBOptions(fsync=False, retention_bytes=one + one // 2)) as db:
        db._apply_retention()
        assert [b.meta.min_time for b in db.blocks] == [4 * HOUR]


CRASHER = """
import os, sys
from pathlib import Path
import numpy as np
from omtsdb.model import Labels
from omtsdb.tsdb.block.writer import write_block
from omtsdb.tsdb.db import DB, DBOptions
path, mode, step = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
def die(s):
    if s == step:
        os._exit(0)
ts = np.arange(0, 7_200_000, 15_000, dtype=np.int64)
if mode == "write":
    write_block(path, [(Labels({"__name__": "x"}), ts, ts / 7.0)], min_time=0, max_time=7_200_000, on_step=die)
else:
    import omtsdb.tsdb.block.compact as c
    real = c.write_block
    c.write_block = lambda *a, **kw: real(*a, **{**kw, "on_step": die})
    db = DB.open(path, DBOptions())
    db.compact()
    db.close()
    if step == "delete":
        os._exit(0)
"""

STEPS = ["chunks", "index", "meta", "fsync", "rename", "parent_fsync"]


@pytest.mark.parametrize("step", STEPS)
def test_crash_during_block_write_leaves_old_or_new_state(tmp_path: Path, step: str) -> None:
    subprocess.run(
        [sys.executable, "-c", CRASHER, str(tmp_path), "write", step], check=True, timeout=60
    )
    with DB.open(tmp_path, DBOptions()) as db:
        n = [len(s) for s in db.iter_series()]
        assert n in ([], [480])
        assert (n == [480]) == (step in ("rename", "parent_fsync"))
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


@pytest.mark.parametrize("step", [*STEPS, "delete"])
def test_crash_during_compaction_keeps_every_sample(tmp_path: Path, step: str) -> None:
    data = make_series(4, 9)
    for a in range(0, 8 * HOUR, 2 * HOUR):
        part = [
            (lb, ts[(ts >= a) & (ts < a + 2 * HOUR)], vs[(ts >= a) & (ts < a + 2 * HOUR)])
            for lb, ts, vs in data
        ]
        write_block(tmp_path, part, min_time=a, max_time=a + 2 * HOUR, fsync=False)
    tail = [(lb, ts[ts >= 8 * HOUR], vs[ts >= 8 * HOUR]) for lb, ts, vs in data]
    write_block(tmp_path, tail, min_time=8 * HOUR, max_time=10 * HOUR, fsync=False)
    subprocess.run(
        [sys.executable, "-c", CRASHER, str(tmp_path), "compact", step],
        check=True,
        timeout=120,
        env={**os.environ},
    )
    with DB.open(tmp_path, DBOptions()) as db:
        got = by_labels(list(db.iter_series()))
        for lb, ts, vs in data:
            assert np.array_equal(got[lb].ts, ts)
            assert np.array_equal(got[lb].vs.view(np.uint64), vs.view(np.uint64))
        spans = sorted((b.meta.min_time, b.meta.max_time) for b in db.blocks)
    for (_, a_end), (b_start, _) in itertools.pairwise(spans):
        assert a_end <= b_start  # no overlapping leftovers: old or new state


def test_import_learns_baselines_and_round_trips_bit_exact(tmp_path: Path) -> None:
    day = 24 * HOUR
    rng = np.random.default_rng(9)
    ts = np.arange(0, 2 * day, 15_000, dtype=np.int64)
    shape = 40 + 20 * np.sin(2 * np.pi * (ts % day) / day)
    series = [Labels({"__name__": "temp", "host": f"h{i}"}) for i in range(4)]
    vals = [np.round(shape + rng.normal(0, 0.3, ts.size), 1) for _ in series]
    vals[0][100] = STALE_NAN
    vals[1][5000] = float("inf")
    idx = np.repeat(np.arange(4), ts.size)
    rep = import_columns(tmp_path, series, idx, np.tile(ts, 4), np.concatenate(vals), fsync=False)
    assert rep.blocks == 2 and rep.samples == 4 * ts.size
    blocks = sorted((Block(p) for p in tmp_path.iterdir()), key=lambda b: b.meta.min_time)
    assert (blocks[1]._ser_base >= 0).sum() >= 3  # day 2 is encoded against day 1's profile
    with DB.open(tmp_path, DBOptions(fsync=False)) as db:
        got = by_labels(list(db.iter_series()))
    for lb, vs in zip(series, vals, strict=True):
        assert np.array_equal(got[lb].ts, ts)
        assert np.array_equal(got[lb].vs.view(np.uint64), vs.view(np.uint64))


def test_batched_select_in_any_batch_size_equals_the_data(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = make_series(12, 24)  # 3 chunks a series; shared timestamps, NaN, -0.0
    meta = write_block(tmp_path, data, min_time=0, max_time=24 * HOUR, chunk_samples=2048)
    assert meta is not None
    b = Block(tmp_path / meta.ulid)
    want = {lb: (ts, vs) for lb, ts, vs in data}
    every = [Matcher(RE, "__name__", ".+")]
    for batch in (1, 3000, 1 << 18):  # a flush after every chunk, mid-series, never
        monkeypatch.setattr(block_reader, "_BATCH_SAMPLES", batch)
        for lo, hi in ((0, 24 * HOUR), (7 * HOUR, 17 * HOUR), (23 * HOUR, 24 * HOUR)):
            b.forget_cached()
            b._ts_cache.clear()
            for _ in range(2):  # decoded, then from the cache
                got = by_labels(b.select(every, lo, hi))
                assert set(got) == set(want)
                for lb, (ts, vs) in want.items():
                    keep = (ts >= lo) & (ts <= hi)
                    assert np.array_equal(got[lb].ts, ts[keep])
                    assert np.array_equal(got[lb].vs.view(np.uint64), vs[keep].view(np.uint64))
                    assert not got[lb].vs.flags.writeable
        b.forget_cached()
        streamed = list(b.iter_series(0, 24 * HOUR))
        assert [s.labels for s in streamed] == [lb for lb, _, _ in data]
        for s, (_, ts, vs) in zip(streamed, data, strict=True):
            assert np.array_equal(s.ts, ts)
            assert np.array_equal(s.vs.view(np.uint64), vs.view(np.uint64))
