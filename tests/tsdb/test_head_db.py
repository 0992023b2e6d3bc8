"""Head, appender and DB: append semantics, chunk cutting, selection, restart round trips."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from omtsdb.errors import BadDataError, DuplicateSampleError, OutOfOrderError
from omtsdb.model import Labels, Matcher, MatchType
from omtsdb.model.samples import STALE_NAN
from omtsdb.tsdb.db import DB, DBOptions

MEM = DBOptions(chunk_capacity=4)


def lb(**kw: str) -> Labels:
    return Labels(kw)


def arr(*xs: float) -> np.ndarray:  # type: ignore[type-arg]
    return np.array(xs, dtype=np.float64)


def ts(*xs: int) -> np.ndarray:  # type: ignore[type-arg]
    return np.array(xs, dtype=np.int64)


def select(db: DB, *ms: Matcher, mint: int = -(2**62), maxt: int = 2**62) -> dict[Labels, list]:  # type: ignore[type-arg]
    q = db.querier(mint, maxt)
    return {
        s.labels: list(zip(s.ts.tolist(), s.vs.tolist(), strict=True))
        for s in q.select(ms, mint, maxt)
    }


def test_append_commit_select_and_chunk_cutting() -> None:
    db = DB.open(None, MEM)
    app = db.appender()
    a = lb(__name__="up", job="a")
    app.append(a, ts(*range(0, 10_000, 1000)), arr(*range(10)))
    assert select(db, Matcher.eq("__name__", "up")) == {}  # not visible before commit
    app.commit()
    got = select(db, Matcher.eq("__name__", "up"))
    assert got[a] == [(t * 1000, float(t)) for t in range(10)]
    # chunk capacity 4 -> 2 closed chunks + open part; a range read crosses them
    got = select(db, Matcher.eq("job", "a"), mint=2500, maxt=6000)
    assert got[a] == [(3000, 3.0), (4000, 4.0), (5000, 5.0), (6000, 6.0)]
    # more appends, one sample at a time, keep cutting
    for t in range(10, 30):
        app = db.appender()
        app.append(a, ts(t * 1000), arr(t))
        app.commit()
    got = select(db, Matcher.eq("job", "a"))
    assert [v for _, v in got[a]] == [float(i) for i in range(30)]


def test_out_of_order_and_duplicates() -> None:
    db = DB.open(None, MEM)
    a = lb(__name__="m")
    app = db.appender()
    app.append(a, ts(10, 20), arr(1, 2))
    app.commit()
    app = db.appender()
    with pytest.raises(OutOfOrderError):
        app.append(a, ts(15), arr(9))
    with pytest.raises(DuplicateSampleError):
        app.append(a, ts(20), arr(3))
    app.append(a, ts(20), arr(2))  # same timestamp, same value: accepted silently
    app.append(a, ts(30), arr(3))
    app.commit()
    assert select(db, Matcher.eq("__name__", "m"))[a] == [(10, 1.0), (20, 2.0), (30, 3.0)]


def test_rollback_and_columns_report() -> None:
    db = DB.open(None, MEM)
    app = db.appender()
    app.append(lb(__name__="x"), ts(1), arr(1))
    app.rollback()
    app.commit()
    assert select(db, Matcher.eq("__name__", "x")) == {}
    series = [lb(__name__="c", i=str(i)) for i in range(5)] + [Labels({"a": "no-name"})]
    idx = np.array([0, 1, 2, 3, 4, 5, 0, 0], np.int64)
    t = ts(100, 100, 100, 100, 100, 100, 50, 200)
    v = arr(1, 2, 3, 4, 5, 6, 7, 8)
    app = db.appender()
    rep = app.append_columns(series, idx, t, v)
    app.commit()
    assert rep.invalid == 1  # the series without a metric name
    got = select(db, Matcher.eq("__name__", "c"))
    assert got[series[0]] == [(50, 7.0), (100, 1.0), (200, 8.0)]
    app = db.appender()
    rep = app.append_columns(series[:2], np.array([0, 1]), ts(150, 300), arr(0, 0))
    app.commit()
    assert rep.out_of_order == 1 and isinstance(rep.first_error, OutOfOrderError)
    assert select(db, Matcher.eq("i", "1"))[series[1]] == [(100, 2.0), (300, 0.0)]


def test_matchers_postings() -> None:
    db = DB.open(None, MEM)
    app = db.appender()
    s1 = lb(__name__="m", a="1", b="x")
    s2 = lb(__name__="m", a="2")
    s3 = lb(__name__="n", a="1")
    for s in (s1, s2, s3):
        app.append(s, ts(1), arr(1))
    app.commit()
    name = Matcher.eq("__name__", "m")
    assert set(select(db, name)) == {s1, s2}
    assert set(select(db, name, Matcher(MatchType.EQ, "b", ""))) == {s2}
    assert set(select(db, name, Matcher(MatchType.NEQ, "b", ""))) == {s1}
    assert set(select(db, Matcher(MatchType.RE, "a", "1|2"))) == {s1, s2, s3}
    assert set(select(db, Matcher(MatchType.NRE, "__name__", "m"), Matcher.eq("a", "1"))) == {s3}
    assert set(select(db, Matcher(MatchType.RE, "a", ".+"), Matcher(MatchType.NRE, "b", "x"))) == {
        s2,
        s3,
    }
    with pytest.raises(BadDataError):
        select(db, Matcher(MatchType.RE, "a", ".*"))
    q = db.querier(0, 10)
    assert q.label_names([], 0, 10) == ["__name__", "a", "b"]
    assert q.label_values("a", [name], 0, 10) == ["1", "2"]
    assert q.label_values("a", [], 5, 10) == []  # no samples in that range


def test_truncate_drops_old_data_and_series() -> None:
    db = DB.open(None, MEM)
    app = db.appender()
    old, new = lb(__name__="old"), lb(__name__="new")
    app.append(old, ts(*range(0, 10)), arr(*range(10)))
    app.append(new, ts(*range(0, 100, 5)), arr(*range(20)))
    app.commit()
    removed = db.head.truncate(50)
    assert removed == 1
    assert select(db, Matcher.eq("__name__", "old")) == {}
    got = select(db, Matcher.eq("__name__", "new"))[new]
    assert got[-1] == (95, 19.0) and got[0][0] <= 50


special = st.sampled_from([float("nan"), STALE_NAN, float("inf"), float("-inf"), -0.0, 5e-324])
values = st.lists(st.one_of(st.floats(allow_nan=True), special), min_size=1, max_size=40)


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(vals=values, gaps=st.lists(st.integers(1, 10**6), min_size=40, max_size=40))
def test_restart_round_trip_bit_exact(tmp_path: Path, vals: list[float], gaps: list[int]) -> None:
    import uuid

    d = tmp_path / uuid.uuid4().hex  # hypothesis replays examples: never reuse a directory
    t = np.cumsum(np.array(gaps[: len(vals)], np.int64))
    v = np.array(vals, np.float64)
    s = lb(__name__="rt", k="ü")
    with DB.open(d, DBOptions(chunk_capacity=8, fsync=False)) as db:
        half = len(vals) // 2
        app = db.appender()
        app.append(s, t[:half], v[:half])
        app.commit()
        app = db.appender()
        app.append(s, t[half:], v[half:])
        app.commit()
    with DB.open(d, DBOptions(chunk_capacity=8, fsync=False)) as db:
        got = db.querier(0, 2**62).select([Matcher.eq("__name__", "rt")], 0, 2**62)
        assert len(got) == 1
        assert got[0].ts.tolist() == t.tolist()
        assert got[0].vs.view(np.uint64).tolist() == v.view(np.uint64).tolist()


def test_sparse_samples_beyond_int32_offsets() -> None:
    db = DB.open(None, DBOptions(chunk_capacity=4))
    s = lb(__name__="sparse")
    day = 86_400_000
    t = [0, 30 * day, 31 * day, 90 * day, 400 * day, 401 * day, 800 * day]
    for i, x in enumerate(t):
        app = db.appender()
        app.append(s, ts(x), arr(i))
        app.commit()
    app = db.appender()
    app.append(s, ts(900 * day, 1000 * day, 1100 * day), arr(7, 8, 9))
    app.commit()
    got = select(db, Matcher.eq("__name__", "sparse"))[s]
    assert got == [(x, float(i)) for i, x in enumerate([*t, 900 * day, 1000 * day, 1100 * day])]


def test_head_time_range_counts_batches_that_close_chunks() -> None:
    # every series of this batch overflows its open chunk (the long path): the head's
    # time range must still advance, or block cutting and range pruning go wrong
    db = DB.open(None, DBOptions(chunk_capacity=8))
    a, b = lb(__name__="x", i="1"), lb(__name__="x", i="2")
    app = db.appender()
    app.append(a, ts(*range(0, 50_000, 1000)), np.arange(50, dtype=np.float64))
    app.append(b, ts(*range(0, 50_000, 1000)), np.arange(50, dtype=np.float64))
    app.commit()
    assert (db.head.mint, db.head.maxt) == (0, 49_000)
    app = db.appender()
    app.append(a, ts(*range(50_000, 90_000, 1000)), np.arange(40, dtype=np.float64))
    app.commit()
    assert db.head.maxt == 89_000
    assert len(select(db, Matcher.eq("i", "1"))[a]) == 90
