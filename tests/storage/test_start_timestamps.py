"""Start timestamps (ST) beside samples: the storage seam, the in-memory storage, the head."""

from __future__ import annotations

import numpy as np
import pytest

from omtsdb.errors import BadDataError
from omtsdb.model import Labels, Matcher
from omtsdb.storage.interface import SeriesBatch, SeriesData
from omtsdb.storage.memory import MemoryStorage
from omtsdb.tsdb.db import DB, DBOptions

A = Labels({"__name__": "c_total", "k": "a"})
B = Labels({"__name__": "c_total", "k": "b"})
NAME = Matcher.eq("__name__", "c_total")


def i64(*xs: int) -> np.ndarray:  # type: ignore[type-arg]
    return np.array(xs, np.int64)


def f64(*xs: float) -> np.ndarray:  # type: ignore[type-arg]
    return np.array(xs, np.float64)


def test_batch_of_fills_unknown_for_series_without_st_and_series_gives_none_back() -> None:
    a = SeriesData(A, i64(10, 20), f64(1, 2), i64(5, 5))
    b = SeriesData(B, i64(10), f64(3))
    batch = SeriesBatch.of([a, b])
    assert batch.st is not None and batch.st.tolist() == [5, 5, 0]
    back = batch.series()
    assert back[0].st is not None and back[0].st.tolist() == [5, 5]
    assert back[1].st is None  # all unknown: no start timestamps
    assert SeriesBatch.of([b]).st is None
    kept = batch.take(np.array([False, True, True]))
    assert kept.st is not None and kept.st.tolist() == [5, 0]
    assert batch.without_st().st is None


def test_memory_storage_keeps_st_per_sample_and_unknown_for_older_samples() -> None:
    m = MemoryStorage()
    app = m.appender()
    app.append(A, i64(1000, 2000), f64(1, 2))
    app.commit()
    app = m.appender()
    app.append(A, i64(3000, 4000), f64(3, 4), i64(2500, 2500))
    app.append(B, i64(2000), f64(1), i64(0))  # all unknown: stored as none
    app.commit()
    q = m.querier(0, 10_000)
    got = {s.labels: s for s in q.select([NAME], 1500, 10_000)}
    assert got[A].st is not None and got[A].st.tolist() == [0, 2500, 2500]
    assert got[B].st is None
    with pytest.raises(BadDataError):
        m.appender().append(A, i64(5000), f64(5), i64(1, 2))


@pytest.mark.parametrize("capacity", [2, 4, 64])
def test_head_keeps_st_across_open_and_closed_chunks(capacity: int) -> None:
    db = DB.open(None, DBOptions(chunk_capacity=capacity))
    t = np.arange(0, 40_000, 1000, dtype=np.int64)
    v = np.arange(40, dtype=np.float64)
    st = np.where(t >= 20_000, 19_500, 0).astype(np.int64)  # a restart at 19.5 s
    app = db.appender()
    app.append(A, t[:10], v[:10])  # no ST at first
    app.append(B, t, v)
    app.commit()
    for a in range(10, 40, 7):  # then with ST, in several commits
        app = db.appender()
        app.append(A, t[a : a + 7], v[a : a + 7], st[a : a + 7])
        app.commit()
    q = db.querier(0, 10**9)
    got = {s.labels: s for s in q.select([NAME], 0, 10**9)}
    assert got[A].ts.tolist() == t.tolist() and got[A].vs.tolist() == v.tolist()
    assert got[A].st is not None and got[A].st.tolist() == st.tolist()
    assert got[B].st is None
    part = {s.labels: s for s in q.select([NAME], 25_000, 30_000)}
    assert part[A].st is not None and part[A].st.tolist() == [19_500] * 6
    early = {s.labels: s for s in q.select([NAME], 0, 5000)}
    assert early[A].st is None  # no known ST in that range
    batch = q.select_batch([NAME], 0, 10**9)
    assert batch.st is not None and batch.st.tolist() == st.tolist() + [0] * 40


def test_head_one_batch_for_many_series_mixed_st() -> None:
    db = DB.open(None, DBOptions(chunk_capacity=3))
    app = db.appender()
    idx = np.repeat(np.arange(3), 5)
    ts = np.tile(np.arange(5, dtype=np.int64) * 1000, 3)
    vs = np.arange(15, dtype=np.float64)
    st = np.where(idx == 1, ts - 1000, 0).astype(np.int64)  # series 1: a delta series
    series = [Labels({"__name__": "c_total", "k": str(i)}) for i in range(3)]
    rep = app.append_columns(series, idx, ts, vs, st)
    app.commit()
    assert rep.rejected == 0
    got = {s.labels: s for s in db.querier(0, 10**6).select([NAME], 0, 10**6)}
    assert got[series[0]].st is None and got[series[2]].st is None
    assert got[series[1]].st is not None
    assert got[series[1]].st.tolist() == [-1000, 0, 1000, 2000, 3000]


def test_head_row_of_removed_series_is_reused() -> None:
    db = DB.open(None, DBOptions(chunk_capacity=4))
    app = db.appender()
    app.append(A, i64(1000), f64(1), i64(500))
    app.commit()
    db.head.truncate(5000)  # drops A entirely
    app = db.appender()
    app.append(B, i64(6000, 7000), f64(1, 2), i64(5500, 5500))
    app.commit()
    assert db.head._starts.used == 1
    got = db.querier(0, 10**6).select([NAME], 0, 10**6)
    assert [s.labels for s in got] == [B]
    assert got[0].st is not None and got[0].st.tolist() == [5500, 5500]
