"""Start timestamps in rate/increase/irate/resets and start_timestamp() (Prometheus 3.14)."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as hst

from omtsdb.model import Labels
from omtsdb.promql.engine import Engine, EngineOpts
from omtsdb.promql.functions.counters import irate, overlapping_windows, rate, resets
from omtsdb.promql.functions.windows import Windows
from omtsdb.storage.interface import SeriesData
from omtsdb.tsdb.db import DB, DBOptions

ENGINE = Engine(EngineOpts(enable_experimental_functions=True))


# -- a loop-per-window transcription of Prometheus's functions, for comparison --------------
def _st_reset(pst: int, pt: int, cst: int, ct: int) -> bool:
    if cst == 0 or cst >= ct or cst < pt:
        return False
    if cst > pt:
        return True
    return pst <= pt and pst != 0 and pst != pt


def _ref_rate(ts: list[int], vs: list[float], st: list[int], t: int, rng: int, is_rate: bool):  # type: ignore[no-untyped-def]
    n = len(ts)
    if n == 0:
        return None
    result = vs[-1] - vs[0]
    for i in range(1, n):
        if vs[i] < vs[i - 1] or _st_reset(st[i - 1], ts[i - 1], st[i], ts[i]):
            result += vs[i - 1]
    start = t - rng
    to_start = (ts[0] - start) / 1000
    to_end = (t - ts[-1]) / 1000
    sampled = (ts[-1] - ts[0]) / 1000
    avg = sampled / (n - 1) if n > 1 else 0.0
    thresh = avg * 1.1
    if st[0] != 0 and start < st[0] < ts[0]:
        to_start = 0.0
        sampled = (ts[-1] - st[0]) / 1000
        result += vs[0]
    elif n == 1:
        return None
    else:
        if to_start >= thresh:
            to_start = avg / 2
        to_zero = to_start
        if result > 0 and vs[0] >= 0:
            to_zero = sampled * (vs[0] / result)
        to_start = min(to_start, to_zero)
    if to_end >= thresh:
        to_end = avg / 2
    factor = (sampled + to_start + to_end) / sampled if sampled else 1.0
    if is_rate:
        factor /= rng / 1000
    return result * factor


def _ref_irate(ts: list[int], vs: list[float], st: list[int]):  # type: ignore[no-untyped-def]
    if len(ts) < 2:
        return None
    (t0, t1), (v0, v1), (s0, s1) = ts[-2:], vs[-2:], st[-2:]
    res = v1 if (v1 < v0 or _st_reset(s0, t0, s1, t1)) else v1 - v0
    return res / ((t1 - t0) / 1000)


def _ref_resets(ts: list[int], vs: list[float], st: list[int]):  # type: ignore[no-untyped-def]
    if not ts:
        return None
    return float(
        sum(
            vs[i] < vs[i - 1] or _st_reset(st[i - 1], ts[i - 1], st[i], ts[i])
            for i in range(1, len(ts))
        )
    )


def _windows(ts: np.ndarray, vs: np.ndarray, st: np.ndarray, t: np.ndarray, rng: int) -> Windows:  # type: ignore[type-arg]
    lo = np.searchsorted(ts, t - rng, "right").astype(np.int64)
    hi = np.searchsorted(ts, t, "right").astype(np.int64)
    return Windows(ts, vs, lo, hi, t, rng, st)


@settings(max_examples=300, deadline=None)
@given(
    hst.lists(
        hst.tuples(
            hst.integers(1, 90_000),  # gap to the previous sample
            hst.integers(0, 50),  # value
            hst.sampled_from(["none", "prev_t", "const", "inside", "after", "random"]),
        ),
        min_size=1,
        max_size=25,
    ),
    hst.integers(30_000, 400_000),
)
def test_vectorised_st_functions_match_prometheus_loops(
    spec: list[tuple[int, int, str]], rng: int
) -> None:
    ts = np.cumsum([g for g, _, _ in spec]).astype(np.int64)
    vs = np.array([v for _, v, _ in spec], np.float64)
    st = np.zeros(ts.size, np.int64)
    for i, (_, _, kind) in enumerate(spec):
        prev = int(ts[i - 1]) if i else int(ts[i]) - 60_000
        st[i] = {
            "none": 0,
            "prev_t": prev,
            "const": int(ts[0]) - 1000,
            "inside": int(ts[i]) - 1,
            "after": int(ts[i]) + 5,
            "random": int(ts[i]) - (i * 7919 % 120_000),
        }[kind]
    t = np.arange(0, int(ts[-1]) + rng, 17_000, dtype=np.int64)
    w = _windows(ts, vs, st, t, rng)
    got = {
        "rate": rate(w, ()),
        "irate": irate(w, ()),
        "resets": resets(w, ()),
    }
    for k, tk in enumerate(t.tolist()):
        a, b = int(w.lo[k]), int(w.hi[k])
        tw, vw, sw = ts[a:b].tolist(), vs[a:b].tolist(), st[a:b].tolist()
        for name, want in (
            ("rate", _ref_rate(tw, vw, sw, tk, rng, True)),
            ("irate", _ref_irate(tw, vw, sw)),
            ("resets", _ref_resets(tw, vw, sw)),
        ):
            v, ok = got[name]
            assert bool(ok[k]) == (want is not None), (name, k)
            if want is not None:
                assert np.isclose(v[k], want, rtol=1e-12, atol=0), (name, k, v[k], want)


def _db(series: dict[Labels, tuple[list[int], list[float], list[int] | None]]) -> DB:
    db = DB.open(None, DBOptions(require_metric_name=False))
    app = db.appender()
    for lb, (ts, vs, st) in series.items():
        app.append(
            lb,
            np.array(ts, np.int64),
            np.array(vs, np.float64),
            None if st is None else np.array(st, np.int64),
        )
    app.commit()
    return db


M = 60_000
NO_ST = Labels({"__name__": "c_total", "k": "plain"})
WITH_ST = Labels({"__name__": "c_total", "k": "st"})
OVERLAP = Labels({"__name__": "o_total"})


K = Labels({"k": "st"})
P = Labels({"k": "plain"})


def _values(res: object) -> dict[Labels, list[float]]:
    """Instant (one value) or range results, by labels."""
    out = {}
    for s in res.value:  # type: ignore[attr-defined]
        out[s.labels] = s.vs.tolist() if hasattr(s, "vs") else [s.v]
    return out


def test_series_without_st_are_bit_identical_beside_series_with_st() -> None:
    rs = np.random.default_rng(3)
    ts = (np.arange(40) * 15_000 + rs.integers(-900, 900, 40)).tolist()
    vs = np.cumsum(rs.random(40) * 7.3).round(6)
    vs[17:] -= vs[16]  # a reset
    plain = (ts, vs.tolist(), None)
    with_st = (ts, vs.tolist(), [t - 7_000 if i % 9 == 4 else 0 for i, t in enumerate(ts)])
    alone = _db({NO_ST: plain})
    both = _db({NO_ST: plain, WITH_ST: with_st})
    for q in ("rate(c_total[1m])", "increase(c_total[95s])", "irate(c_total[1m])"):
        want = _values(ENGINE.range_query(alone, q, 0, 600_000, 7_000))[P]
        vals = _values(ENGINE.range_query(both, q, 0, 600_000, 7_000))
        assert np.array_equal(np.array(vals[P]), np.array(want)), q
        assert vals[K] != want, q  # the restarts told by start timestamps count


def test_st_is_ignored_when_disabled_by_delta_and_through_subqueries() -> None:
    db = _db({WITH_ST: ([2 * M, 3 * M, 4 * M], [5, 5, 5], [M, 2 * M, 3 * M])})  # a delta series
    off = Engine(EngineOpts(enable_experimental_functions=True, use_start_timestamps=False))
    q = "increase(c_total[3m])"
    assert _values(ENGINE.instant_query(db, q, 4 * M)) == {K: [15.0]}
    assert _values(off.instant_query(db, q, 4 * M)) == {K: [0.0]}
    assert _values(ENGINE.instant_query(db, "increase(c_total[3m:1m])", 4 * M)) == {K: [0.0]}
    assert _values(ENGINE.instant_query(db, "delta(c_total[3m])", 4 * M)) == {K: [0.0]}
    assert _values(ENGINE.instant_query(db, "resets(c_total[3m])", 4 * M)) == {K: [2.0]}
    assert _values(off.instant_query(db, "resets(c_total[3m])", 4 * M)) == {K: [0.0]}


def test_start_timestamp_function() -> None:
    db = _db(
        {
            WITH_ST: ([10_000, 20_000], [1, 2], [9_000, 0]),
            NO_ST: ([10_000], [1], None),
        }
    )
    got = ENGINE.range_query(db, "start_timestamp(c_total)", 10_000, 25_000, 5_000)
    assert {s.labels: s.vs.tolist() for s in got.value} == {
        Labels({"k": "st"}): [9.0, 9.0, 0.0, 0.0],
        Labels({"k": "plain"}): [0.0, 0.0, 0.0, 0.0],
    }
    assert ENGINE.instant_query(db, "start_timestamp((c_total))", 10_000).value == []
    assert ENGINE.instant_query(db, "start_timestamp(c_total + 1)", 10_000).value == []
    at = ENGINE.instant_query(db, "start_timestamp(c_total @ 10)", 60_000).value
    assert [(s.labels, s.v) for s in at] == [  # type: ignore[union-attr]
        (Labels({"k": "plain"}), 0.0),
        (Labels({"k": "st"}), 9.0),
    ]
    off = Engine(EngineOpts(enable_experimental_functions=True, use_start_timestamps=False))
    assert off.instant_query(db, "start_timestamp(c_total)", 10_000).value == []


def test_overlap_warning_counts_windows_per_metric_at_first_position() -> None:
    db = _db(
        {
            OVERLAP: ([2 * M, 3 * M, 4 * M], [60, 120, 180], [0, M, M // 2]),  # both overlap
            WITH_ST: ([2 * M, 3 * M], [1, 2], [M, 2 * M]),
        }
    )
    one = ENGINE.instant_query(db, "rate(o_total[3m])", 4 * M)
    msg = (
        "PromQL warning: sample has start time that overlaps with previous sample timestamp"
        ' for metric "o_total"'
    )
    assert one.warnings == [f"{msg} (1:6)"]
    many = ENGINE.range_query(db, "sum(increase(o_total[3m])) + rate(c_total[1m])", 0, 6 * M, M)
    # windows ending at 3m, 4m and 5m hold an overlapping pair, the one ending at 6m does not
    assert many.warnings == [f"{msg} (3 occurrences) (1:14)"]
    assert ENGINE.instant_query(db, "irate(o_total[3m])", 4 * M).warnings == []
    assert ENGINE.instant_query(db, "resets(o_total[3m])", 4 * M).warnings == []


def test_overlapping_windows_kernel() -> None:
    ts = np.array([1000, 2000, 3000], np.int64)
    st = np.array([500, 1500, 1700], np.int64)  # 1700 < 2000 and != 1500: overlap at j=2
    t = np.array([2000, 3000, 9000], np.int64)
    w = _windows(ts, np.ones(3), st, t, 1500)
    assert overlapping_windows(w).tolist() == [False, True, False]


def test_st_survives_the_head_and_reaches_the_engine_as_series_data() -> None:
    db = _db({WITH_ST: ([M, 2 * M], [3, 4], [30_000, 30_000])})
    (s,) = list(db.iter_series())
    assert isinstance(s, SeriesData) and s.st is not None and s.st.tolist() == [30_000, 30_000]
    # a zero sample at the start time 30 s: increase over (0, 2m] is 4 with no extrapolation
    assert _values(ENGINE.instant_query(db, "increase(c_total[2m])", 2 * M)) == {K: [4.0]}
