"""Kernels behind classic histograms, compensated sums, natural sort and annotations."""

from __future__ import annotations

import math
import struct

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from omtsdb.promql.engine.annotate import position
from omtsdb.promql.engine.histcalls import openmetrics_float
from omtsdb.promql.functions import kahan
from omtsdb.promql.functions.histogram import bucket_fraction, bucket_quantile, ensure_monotonic
from omtsdb.promql.functions.kahan import EXACT_WIDTH, kahan_mean, kahan_sum, needs_compensation
from omtsdb.promql.functions.natsort import natural_key
from omtsdb.promql.parser.ast import PosRange

INF = math.inf


def _col(*counts: float) -> np.ndarray:
    return np.array(counts, np.float64)[:, None]


def test_bucket_quantile_interpolates_and_special_cases() -> None:
    ub = np.array([0.0, 2, 4, 6, INF])
    c = _col(0, 10, 20, 30, 30)
    got = bucket_quantile(np.array([1 / 6]), ub, c)
    assert got[0] == 1.0
    assert bucket_quantile(np.array([-0.5]), ub, c)[0] == -INF
    assert bucket_quantile(np.array([2.0]), ub, c)[0] == INF
    assert math.isnan(bucket_quantile(np.array([math.nan]), ub, c)[0])
    # no +Inf bucket, or no observations: NaN
    assert math.isnan(bucket_quantile(np.array([0.5]), ub[:-1], c[:-1])[0])
    assert math.isnan(bucket_quantile(np.array([0.5]), ub, _col(0, 0, 0, 0, 0))[0])
    # rank in the +Inf bucket: the second highest bound
    assert bucket_quantile(np.array([0.99]), np.array([1.0, INF]), _col(1, 10))[0] == 1.0
    # several steps at once
    many = bucket_quantile(np.array([0.5, 1.0]), ub, np.hstack([c, c]))
    assert many.tolist() == [3.0, 6.0]


def test_ensure_monotonic_forces_and_ignores_tiny_deltas() -> None:
    ub = np.array([1.0, 2, 4, INF])
    fixed, fx = ensure_monotonic(ub, _col(5, 3, 9, 8))
    assert fixed[:, 0].tolist() == [5, 5, 9, 9]
    assert bool(fx.forced[0])
    assert (fx.min_bucket[0], fx.max_bucket[0], fx.max_diff[0]) == (2.0, INF, 2.0)
    tiny, fx2 = ensure_monotonic(ub, _col(1.0, 1.0 + 1e-14, 1.0 - 1e-14, 2.0))
    assert tiny[:, 0].tolist() == [1.0, 1.0, 1.0, 2.0]
    assert not bool(fx2.forced[0])


def test_bucket_fraction() -> None:
    ub = np.array([0.0, 2, 4, 6, INF])
    c = _col(0, 10, 20, 30, 30)
    one = np.array([0.0]), np.array([4.0])
    assert abs(bucket_fraction(*one, ub, c)[0] - 2 / 3) < 1e-15
    assert abs(bucket_fraction(np.array([0.0]), np.array([3.5]), ub, c)[0] - 0.5833333333) < 1e-9
    assert bucket_fraction(np.array([4.0]), np.array([1.0]), ub, c)[0] == 0.0
    assert bucket_fraction(np.array([-INF]), np.array([INF]), ub, c)[0] == 1.0
    assert math.isnan(bucket_fraction(np.array([math.nan]), np.array([1.0]), ub, c)[0])
    # a first bucket with a bound <= 0 has -Inf as its lower end: no interpolation inside it
    neg = np.array([-1.0, 1, INF])
    assert bucket_fraction(np.array([-2.0]), np.array([0.0]), neg, _col(2, 4, 4))[0] == 0.25


def test_kahan_sum_and_mean_keep_small_terms() -> None:
    m = np.array([[1.0, 1e100, 1.0, -1e100]])
    mask = np.ones_like(m, np.bool_)
    assert kahan_sum(m, mask)[0] == 2.0
    assert kahan_mean(m, mask)[0] == 0.5
    assert bool(needs_compensation(m, mask, m.sum(axis=1))[0])
    # narrow windows always take the sequential sum (bit-exact); wide ones only when needed
    pos = np.array([[1.0, 2.0]])
    assert bool(needs_compensation(pos, np.ones_like(pos, np.bool_), pos.sum(axis=1))[0])
    wide = np.ones((1, EXACT_WIDTH + 1))
    assert not bool(needs_compensation(wide, np.ones_like(wide, np.bool_), wide.sum(axis=1))[0])
    # overflow switches to an incremental mean instead of returning Inf
    big = np.array([[1e308, 1e308, 1e308, 0.0]])
    bmask = np.array([[True, True, True, False]])
    assert abs(kahan_mean(big, bmask)[0] - 1e308) / 1e308 < 1e-12


def test_natural_order() -> None:
    vals = ["1.111.3", "1.2.3", "1.11.3", "4m600", "4m1000", "4m5", "10", "2", "011"]
    assert sorted(vals, key=natural_key) == [
        "1.2.3",
        "1.11.3",
        "1.111.3",
        "2",
        "4m5",
        "4m600",
        "4m1000",
        "10",
        "011",
    ]


def test_annotation_position_and_quantile_label() -> None:
    assert position("a +\n  b", PosRange(6, 7)) == "2:3"
    assert position("histogram_quantile(0.8, x)", PosRange(24, 25)) == "1:25"
    assert [openmetrics_float(v) for v in (0.0, 1.0, 0.25, -0.1, math.nan, 1e6)] == [
        "0.0",
        "1.0",
        "0.25",
        "-0.1",
        "NaN",
        "1e+06",
    ]


def _prometheus_sum(xs: list[float]) -> float:
    """Prometheus's kahansum.Inc loop and its final ``sum + c``, written out in plain Python."""
    s = c = 0.0
    for x in xs:
        t = s + x
        if math.isinf(t):
            c = 0.0
        elif abs(s) >= abs(x):
            c += (s - t) + x
        else:
            c += (x - t) + s
        s = t
    return s if math.isinf(s) else s + c


def test_narrow_windows_sum_bit_exact_with_prometheus() -> None:
    rng = np.random.default_rng(7)
    m = np.round(rng.normal(50, 20, (200, 60)), 3)
    mask = rng.random((200, 60)) < 0.9
    mask = np.sort(mask, axis=1)[:, ::-1]  # present cells first, as in a gathered window
    got = kahan_sum(np.where(mask, m, 0.0), mask)
    want = [_prometheus_sum(row[k].tolist()) for row, k in zip(m, mask, strict=True)]
    assert got.tolist() == want


def _prometheus_mean(xs: list[float]) -> float:
    """Prometheus 3.5's avg_over_time loop for floats, written out in plain Python."""
    s = c = mean = 0.0
    count = 0.0
    incremental = False
    for x in xs:
        count += 1
        if not incremental:
            t = s + x
            nc = c
            if math.isinf(t):
                nc = 0.0
            elif abs(s) >= abs(x):
                nc += (s - t) + x
            else:
                nc += (x - t) + s
            if count == 1 or not math.isinf(t):
                s, c = t, nc
                continue
            incremental = True
            mean = s / (count - 1)
            c /= count - 1
        q = (count - 1) / count
        a, inc = q * mean, x / count
        t = a + inc
        if math.isinf(t):
            c = 0.0
        elif abs(a) >= abs(inc):
            c = q * c + ((a - t) + inc)
        else:
            c = q * c + ((inc - t) + a)
        mean = t
    if incremental:
        return mean + c
    return s / count + c / count


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.lists(
            st.one_of(
                st.floats(allow_nan=True, allow_infinity=True),
                st.sampled_from([0.0, -0.0, 1e308, -1e308, 1e-300, 0.1]),
            ),
            min_size=1,
            max_size=12,
        ),
        min_size=1,
        max_size=6,
    )
)
@pytest.mark.slow
def test_vectorised_kahan_matches_prometheus_loops(rows: list[list[float]]) -> None:
    width = max(len(r) for r in rows)
    m = np.zeros((len(rows), width))
    mask = np.zeros((len(rows), width), np.bool_)
    for i, r in enumerate(rows):
        m[i, : len(r)] = r
        mask[i, : len(r)] = True

    def same(a: float, b: float) -> bool:
        return (math.isnan(a) and math.isnan(b)) or struct.pack("<d", a) == struct.pack("<d", b)

    for loop_from in (kahan.ROW_LOOP_COLUMNS, 1):  # np.cumsum, then the row-by-row loop
        saved, kahan.ROW_LOOP_COLUMNS = kahan.ROW_LOOP_COLUMNS, loop_from
        try:
            got = kahan_sum(m, mask).tolist()
            assert all(same(g, _prometheus_sum(r)) for g, r in zip(got, rows, strict=True)), got
            got = kahan_mean(m, mask).tolist()
            assert all(same(g, _prometheus_mean(r)) for g, r in zip(got, rows, strict=True)), got
        finally:
            kahan.ROW_LOOP_COLUMNS = saved


def test_running_sums_equal_cumsum_bit_for_bit() -> None:
    rng = np.random.default_rng(2)
    x = rng.standard_normal((40, kahan.ROW_LOOP_COLUMNS + 7)) * 10.0 ** rng.integers(-300, 300, 1)
    x[3, :5] = [np.nan, np.inf, -np.inf, -0.0, 1e308]
    want = np.cumsum(x, axis=0)
    assert np.array_equal(kahan.running_sums(x), want, equal_nan=True)
    assert np.array_equal(kahan.running_sums(x, last_only=True)[-1], want[-1], equal_nan=True)


def _prometheus_stdvar(xs: list[float]) -> float:
    """Prometheus 3.5's stdvar aggregation of one group at one step, in plain Python."""
    mean, value, count = xs[0], (0.0 if math.isfinite(xs[0]) else math.nan), 1.0
    for f in xs[1:]:
        count += 1
        delta = f - mean
        mean += delta / count
        value += delta * (f - mean)
    return value / count


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.lists(st.one_of(st.floats(allow_nan=True), st.none()), min_size=1, max_size=6),
        min_size=1,
        max_size=5,
    )
)
def test_stdvar_follows_prometheus_welford(groups: list[list[float | None]]) -> None:
    from omtsdb.promql.engine.aggregate import _welford

    rows = [v for g in groups for v in g]
    vals = np.array([[0.0 if v is None else v] for v in rows])
    mask = np.array([[v is not None] for v in rows])
    starts = np.cumsum([0] + [len(g) for g in groups[:-1]])
    with np.errstate(all="ignore"):
        got = _welford(vals, mask, starts)
    assert got is not None
    for k, g in enumerate(groups):
        present = [v for v in g if v is not None]
        if not present:
            continue
        want = _prometheus_stdvar(present)
        a = float(got[k, 0])
        assert (math.isnan(a) and math.isnan(want)) or struct.pack("<d", a) == struct.pack(
            "<d", want
        )


def test_sum_aggregation_bit_exact_for_equal_and_unequal_groups() -> None:
    """``sum by`` over groups of one size (reshaped straight from the sorted rows) and of
    mixed sizes (padded) both take Prometheus's sequential compensated sum in series order."""
    from omtsdb.model.labels import Labels
    from omtsdb.promql.engine.aggregate import aggregate
    from omtsdb.promql.engine.block import Block

    rng = np.random.default_rng(11)
    for sizes in ([3, 3, 3, 3], [1, 4, 2, 7]):
        n, steps = sum(sizes), 9
        vals = np.round(rng.normal(0, 1e6, (n, steps)), 2) * 10.0 ** rng.integers(-3, 9, (n, 1))
        mask = rng.random((n, steps)) < 0.85
        groups = [str(g) for g, k in enumerate(sizes) for _ in range(k)]
        order = rng.permutation(n)  # members of a group interleaved with others
        labels = [Labels({"g": groups[i], "i": f"{i:02d}"}) for i in order]
        res = aggregate("sum", Block(labels, vals[order], mask[order]), None, ("g",), False)
        for k, lb in enumerate(res.labels):
            rows = [j for j, i in enumerate(order) if groups[i] == lb.get("g")]
            for c in range(steps):
                xs = [float(vals[order][j, c]) for j in rows if mask[order][j, c]]
                if xs:
                    assert res.vals[k, c] == _prometheus_sum(xs), (sizes, k, c)
