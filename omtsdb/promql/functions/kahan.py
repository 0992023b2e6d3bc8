"""Compensated (Kahan-Neumaier) sums and means over the rows of a masked matrix, the way
Prometheus accumulates ``sum_over_time``, ``avg_over_time`` and the ``sum``/``avg``
aggregations.

A plain (pairwise) ``sum`` is accurate when all summands have one sign; Prometheus's sequential
compensated sum only gives a materially different answer when large terms cancel or the sum
overflows. ``needs_compensation`` picks those rows, and only they take the sequential path,
which is vectorised across rows with one step per column.
"""

from __future__ import annotations

import numpy as np

from omtsdb.model.samples import F64

BoolArr = np.ndarray[tuple[int, ...], np.dtype[np.bool_]]
# Magnitude-to-result ratio beyond which a plain sum is recomputed with compensation.
CANCELLATION = 1000.0
# Windows (and aggregation groups) up to this many cells take the sequential compensated sum, so
# the result is bit-for-bit Prometheus's; ``_prefix`` makes that a few whole-matrix operations.
EXACT_WIDTH = 1 << 20


def neumaier_inc(inc: F64, s: F64, c: F64) -> tuple[F64, F64]:
    """Prometheus's ``kahansum.Inc`` element-wise: add ``inc`` to ``s`` with compensation
    ``c`` (reset when the sum overflows)."""
    t = s + inc
    big_s = np.abs(s) >= np.abs(inc)
    c2 = np.where(np.isinf(t), 0.0, c + np.where(big_s, (s - t) + inc, (inc - t) + s))
    return t, c2


def needs_compensation(m: F64, mask: BoolArr, plain: F64) -> BoolArr:
    """Rows that take the compensated sum: all of them for windows of up to ``EXACT_WIDTH``
    samples (bit-exact with Prometheus); for wider ones a non-finite result, or terms that
    cancel so much (sum of magnitudes over 1000 times the result) that the rounding error of a
    plain sum could show in the result."""
    if m.shape[1] <= EXACT_WIDTH:
        return np.ones(m.shape[0], np.bool_)
    with np.errstate(all="ignore"):
        mag = np.where(mask, np.abs(m), 0.0).sum(axis=1)
        out: BoolArr = ~np.isfinite(plain) | (mag > np.abs(plain) * CANCELLATION)
    return out


# running sums over rows: below this many columns ``np.cumsum`` (~4 ns a cell), above it one
# whole-row ``np.add`` per row (~1 µs a call plus under 1 ns a cell)
ROW_LOOP_COLUMNS = 512


def running_sums(x: F64, last_only: bool = False) -> F64:
    """``np.cumsum(x, axis=0)``, bit for bit (each row adds the next, left to right); with
    ``last_only`` only the last row of the result is meaningful."""
    rows, cols = x.shape
    if cols < ROW_LOOP_COLUMNS or rows < 2:
        out: F64 = np.cumsum(x, axis=0)
        return out
    if last_only:
        acc = x[0].copy()
        for j in range(1, rows):
            np.add(acc, x[j], out=acc)
        last: F64 = acc[None, :]
        return last
    run = np.empty_like(x)
    run[0] = x[0]
    for j in range(1, rows):
        np.add(run[j - 1], x[j], out=run[j])
    return run


def _prefix(m: F64, mask: BoolArr) -> tuple[F64, F64, BoolArr]:
    """``_prefix_cols`` of the rows of ``m`` (present cells where ``mask``)."""
    # columns as rows (C order): the running sums then add whole contiguous rows
    return _prefix_cols(np.where(mask.T, m.T, 0.0))


def _prefix_cols(x: F64) -> tuple[F64, F64, BoolArr]:
    """Prometheus's sequential compensated sum of each column of ``x`` (absent cells 0; ``x``
    is left as it is) without a Python loop per cell: the running sums of the sequential loop
    are row-by-row additions (``running_sums``), each step's compensation term follows
    element-wise from the sums before and after it, and the compensation accumulates the same
    way (``np.add.reduce`` would sum pairwise when there is one column). Returns ``(sum,
    compensation, columns whose running sum reached ±Inf)``; on those the compensation is not
    Prometheus's (it resets it at an infinite sum) and callers use the sum alone or the loop."""
    if np.any((x[0] == 0.0) & np.signbit(x[0])):
        x = x.copy()
        x[0] += 0.0  # Go starts the sum at +0: a leading -0.0 becomes +0.0
    run = running_sums(x)
    total = run[-1]
    # each step's rounding error, exactly (Knuth's TwoSum: the same value Neumaier's branch on
    # the larger magnitude computes, without the branch): err = (prev - (run - bv)) + (x - bv)
    # with bv = run - prev; the first step's is 0 (its sum is its term)
    cur, prev = run[1:], run[:-1]
    bv = np.subtract(cur, prev)
    xs = np.subtract(x[1:], bv)
    np.subtract(cur, bv, out=bv)
    np.subtract(prev, bv, out=bv)
    np.add(bv, xs, out=bv)
    comp = running_sums(bv, last_only=True)[-1] if bv.shape[0] else np.zeros(total.shape)
    hit_inf = np.zeros(total.shape, np.bool_)
    odd = ~np.isfinite(total)
    if odd.any():
        hit_inf[odd] = np.isinf(run[:, odd]).any(axis=0)
    return total, comp, hit_inf


def kahan_sum_cols(x: F64) -> F64:
    """``kahan_sum`` of the columns of ``x`` (absent cells 0)."""
    with np.errstate(all="ignore"):
        total, comp, hit_inf = _prefix_cols(x)
        out: F64 = np.where(hit_inf | ~np.isfinite(total), total, total + comp)
    return out


def kahan_mean_cols(x: F64, count: F64) -> F64:
    """``kahan_mean`` of the columns of ``x`` whose first ``count`` cells are present (the
    rest 0), as a window's samples are."""
    with np.errstate(all="ignore"):
        total, comp, hit_inf = _prefix_cols(x)
        out: F64 = np.where(count > 0, total / count + comp / count, np.nan)
    if hit_inf.any():
        sub_k = np.arange(x.shape[0])[None, :] < count[hit_inf][:, None]
        out[hit_inf] = _kahan_mean_loop(np.ascontiguousarray(x[:, hit_inf].T), sub_k)
    return out


def kahan_sum(m: F64, mask: BoolArr) -> F64:
    """Compensated sum of the present cells of each row, in column order, bit-exact with
    Prometheus's ``kahansum``: ``sum + c``, or the sum alone once it is infinite (or NaN)."""
    rows, width = m.shape
    if width == 0:
        return np.zeros(rows)
    with np.errstate(all="ignore"):
        total, comp, hit_inf = _prefix(m, mask)
        out: F64 = np.where(hit_inf | ~np.isfinite(total), total, total + comp)
    return out


def _kahan_sum_loop(m: F64, mask: BoolArr) -> F64:
    """The same, one vectorised step per column (the reference for ``kahan_sum``)."""
    rows = m.shape[0]
    s = np.zeros(rows)
    c = np.zeros(rows)
    with np.errstate(all="ignore"):
        for j in range(m.shape[1]):
            ok = mask[:, j]
            t, c2 = neumaier_inc(np.where(ok, m[:, j], 0.0), s, c)
            s = np.where(ok, t, s)
            c = np.where(ok, c2, c)
        out: F64 = np.where(np.isinf(s), s, s + c)
    return out


def kahan_mean(m: F64, mask: BoolArr) -> F64:
    """Prometheus's ``avg_over_time`` for floats: a compensated direct mean that switches to an
    incremental mean once the running sum would overflow. Absent cells may be anywhere in a row.
    Rows whose sum stays finite are computed without a loop (``_prefix``); the others take the
    step-by-step path."""
    rows, width = m.shape
    out = np.full(rows, np.nan)
    if width == 0:
        return out
    count = mask.sum(axis=1).astype(np.float64)
    with np.errstate(all="ignore"):
        total, comp, hit_inf = _prefix(m, mask)
        out = np.where(count > 0, total / count + comp / count, np.nan)
    if hit_inf.any():  # the step-by-step path wants the present cells first in each row
        sub_m, sub_k = m[hit_inf], mask[hit_inf]
        order = np.argsort(~sub_k, axis=1, kind="stable")
        sub_m = np.take_along_axis(sub_m, order, axis=1)
        sub_k = np.take_along_axis(sub_k, order, axis=1)
        out[hit_inf] = _kahan_mean_loop(sub_m, sub_k)
    return out


def _kahan_mean_loop(m: F64, mask: BoolArr) -> F64:
    rows, width = m.shape
    out = np.full(rows, np.nan)
    s = np.where(mask[:, 0], m[:, 0], 0.0)
    c = np.zeros(rows)
    mean = np.zeros(rows)
    incremental = np.zeros(rows, np.bool_)
    count = mask.sum(axis=1).astype(np.float64)
    with np.errstate(all="ignore"):
        for j in range(1, width):
            ok = mask[:, j]
            x = m[:, j]
            cnt = float(j + 1)
            # direct mean while the sum stays finite
            t, c2 = neumaier_inc(x, s, c)
            direct = ok & ~incremental
            stay = direct & ~np.isinf(t)
            switch = direct & np.isinf(t)
            s = np.where(stay, t, s)
            c = np.where(stay, c2, c)
            mean = np.where(switch, s / (cnt - 1), mean)
            c = np.where(switch, c / (cnt - 1), c)
            incremental |= switch
            step = ok & incremental
            q = (cnt - 1) / cnt
            nm, nc = neumaier_inc(x / cnt, q * mean, q * c)
            mean = np.where(step, nm, mean)
            c = np.where(step, nc, c)
        res = np.where(incremental, mean + c, s / count + c / count)
    out = np.where(count > 0, res, np.nan)
    return out
