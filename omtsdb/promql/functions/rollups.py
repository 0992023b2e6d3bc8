"""Range-vector functions, evaluated for one series at every step at once.

The window of step ``i`` is the left-open interval ``(t[i] - range, t[i]]``: samples
``ts[lo[i]:hi[i]]`` with ``lo``/``hi`` from one ``np.searchsorted`` each. Window contents are
gathered into a ``[steps, width]`` matrix (``width`` = the widest window) with a mask, so sums,
extremes, variances and regressions are whole-matrix reductions (``windows``); the counter
functions live in ``counters``. Stale markers are removed before a rollup sees a series.
"""

from __future__ import annotations

import math
import warnings

import numpy as np

from omtsdb.model.samples import F64, I64
from omtsdb.promql.functions.counters import (
    changes,
    delta,
    idelta,
    increase,
    irate,
    rate,
    resets,
)
from omtsdb.promql.functions.kahan import (
    EXACT_WIDTH,
    kahan_mean,
    kahan_mean_cols,
    kahan_sum,
    kahan_sum_cols,
    needs_compensation,
)
from omtsdb.promql.functions.windows import MAX_CELLS, BoolArr, Result, Rollup, Windows, windows

__all__ = ["MAX_CELLS", "ROLLUPS", "BoolArr", "Result", "Rollup", "Windows", "windows"]


def _quiet() -> warnings.catch_warnings:
    w = warnings.catch_warnings()
    return w


def _sum(w: Windows) -> F64:
    cnt = w.count
    width = int(cnt.max()) if cnt.size else 0
    if width == 0 or w.vs.size == 0:
        return np.zeros(w.lo.size)
    if width <= EXACT_WIDTH:  # every window takes Prometheus's compensated sum
        return kahan_sum_cols(w.gather_cols(w.vs))
    m, mask = w.gather(w.vs, 0.0)
    with np.errstate(all="ignore"):
        out: F64 = m.sum(axis=1)
        need = needs_compensation(m, mask, out)
        if need.any():
            out[need] = kahan_sum(m[need], mask[need])
    return out


def sum_over_time(w: Windows, a: tuple[F64, ...]) -> Result:
    return _sum(w), w.count > 0


def count_over_time(w: Windows, a: tuple[F64, ...]) -> Result:
    return w.count.astype(np.float64), w.count > 0


def avg_over_time(w: Windows, a: tuple[F64, ...]) -> Result:
    cnt = w.count
    width = int(cnt.max()) if cnt.size else 0
    if width == 0 or w.vs.size == 0:
        return np.full(cnt.size, np.nan), cnt > 0
    if width <= EXACT_WIDTH:  # every window takes Prometheus's compensated mean
        return kahan_mean_cols(w.gather_cols(w.vs), cnt.astype(np.float64)), cnt > 0
    m, mask = w.gather(w.vs, 0.0)
    with np.errstate(all="ignore"):
        s = m.sum(axis=1)
        out = s / np.maximum(cnt, 1)
        need = needs_compensation(m, mask, s)
        if need.any():
            out[need] = kahan_mean(m[need], mask[need])
    return out, cnt > 0


def _extreme(w: Windows, ufunc: np.ufunc) -> Result:
    """Prometheus's max/min_over_time: the first sample, replaced by any later one that is
    greater (smaller) or when the kept one is NaN, i.e. NaN only for all-NaN windows and the
    earlier of equal values: ``np.fmax``/``np.fmin`` over each window, as one ``reduceat``
    over (start, end) index pairs straight on the samples (no window matrix)."""
    ok = w.count > 0
    if not w.vs.size:
        return np.full(w.lo.size, np.nan), ok
    arr = np.append(w.vs, np.nan)  # ends may equal len(vs): keep every index inside ``arr``
    at = np.empty(2 * w.lo.size, np.int64)
    at[0::2] = w.lo
    at[1::2] = w.hi
    out: F64 = ufunc.reduceat(arr, at)[0::2]
    zero = ok & (out == 0)
    if zero.any():
        # numpy's vector loops do not keep the earlier of +0 and -0: Prometheus answers with the
        # first zero of the window (every other sample is below it, or above it for min)
        pos = np.where(w.vs == 0, np.arange(w.vs.size), w.vs.size)
        first_zero = np.minimum.accumulate(pos[::-1])[::-1]
        out[zero] = w.vs[first_zero[w.lo[zero]]]
    return out, ok


def max_over_time(w: Windows, a: tuple[F64, ...]) -> Result:
    return _extreme(w, np.fmax)


def min_over_time(w: Windows, a: tuple[F64, ...]) -> Result:
    return _extreme(w, np.fmin)


def last_over_time(w: Windows, a: tuple[F64, ...]) -> Result:
    ok = w.count > 0
    idx = np.maximum(w.hi - 1, 0)
    return (w.vs[idx] if w.vs.size else np.full(idx.size, np.nan)), ok


def first_over_time(w: Windows, a: tuple[F64, ...]) -> Result:
    ok = w.count > 0
    idx = np.minimum(w.lo, max(w.vs.size - 1, 0))
    return (w.vs[idx] if w.vs.size else np.full(idx.size, np.nan)), ok


def present_over_time(w: Windows, a: tuple[F64, ...]) -> Result:
    return np.ones(w.lo.size), w.count > 0


def _variance(w: Windows) -> F64:
    cnt = np.maximum(w.count, 1)[:, None]
    m, mask = w.gather(w.vs, 0.0)
    if not m.shape[1]:
        return np.full(w.lo.size, np.nan)
    with np.errstate(all="ignore"):
        # shift by the first sample: exact zeros for constant windows, less cancellation
        d0 = np.where(mask, m - m[:, :1], 0.0)
        mean = d0.sum(axis=1, keepdims=True) / cnt
        d = np.where(mask, d0 - mean, 0.0)
        out: F64 = (d * d).sum(axis=1) / cnt[:, 0]
    return out


def stdvar_over_time(w: Windows, a: tuple[F64, ...]) -> Result:
    return _variance(w), w.count > 0


def stddev_over_time(w: Windows, a: tuple[F64, ...]) -> Result:
    return np.sqrt(_variance(w)), w.count > 0


def quantile_over_time(w: Windows, a: tuple[F64, ...]) -> Result:
    q = a[0]
    m, _mask = w.gather(w.vs, np.nan)
    ok = w.count > 0
    out = np.full(w.lo.size, np.nan)
    if m.shape[1]:
        srt = np.sort(m, axis=1)  # NaN (padding) sorts last
        n = w.count.astype(np.float64)
        with np.errstate(all="ignore"):
            rank = np.clip(q, 0, 1) * (n - 1)
            lo_i = np.clip(np.floor(rank), 0, np.maximum(n - 1, 0)).astype(np.int64)
            hi_i = np.minimum(lo_i + 1, np.maximum(n - 1, 0).astype(np.int64))
            wgt = rank - np.floor(rank)
            rows = np.arange(w.lo.size)
            a_v = srt[rows, lo_i]
            b_v = srt[rows, hi_i]
            out = a_v * (1 - wgt) + b_v * wgt
            out = np.where(wgt == 0, a_v, out)
    out = np.where(q < 0, -np.inf, np.where(q > 1, np.inf, out))
    out = np.where(np.isnan(q), np.nan, out)
    return out, ok


def mad_over_time(w: Windows, a: tuple[F64, ...]) -> Result:
    half = (np.full(w.lo.size, 0.5),)
    med, ok = quantile_over_time(w, half)
    m, mask = w.gather(w.vs, np.nan)
    out = np.full(w.lo.size, np.nan)
    if not m.shape[1]:
        return out, ok
    with np.errstate(all="ignore"):
        dev = np.abs(m - med[:, None])
        has_nan = (mask & np.isnan(dev)).any(axis=1)
        srt = np.sort(np.where(mask, dev, np.inf), axis=1)  # absent cells sort last
        n = w.count
        rank = np.maximum(n - 1, 0) * 0.5
        lo = np.floor(rank).astype(np.int64)
        hi = np.minimum(lo + 1, np.maximum(n - 1, 0))
        frac = rank - lo
        rows = np.arange(w.lo.size)
        x, y = srt[rows, lo], srt[rows, hi]
        out = np.where(frac == 0, x, x + (y - x) * frac)
    out = np.where(has_nan | ~ok, np.nan, out)
    return out, ok


def _regression(w: Windows, intercept_t: I64) -> tuple[F64, F64, BoolArr]:
    cnt = w.count
    ok = cnt >= 2
    y, mask = w.gather(w.vs, 0.0)
    tmat, _ = w.gather(w.ts.astype(np.float64), 0.0)
    x = np.where(mask, (tmat - intercept_t[:, None]) / 1000.0, 0.0)
    n = cnt.astype(np.float64)
    with np.errstate(all="ignore"):
        sx = x.sum(axis=1)
        sy = y.sum(axis=1)
        sxy = (x * y).sum(axis=1)
        sx2 = (x * x).sum(axis=1)
        cov = sxy - sx * sy / n
        var = sx2 - sx * sx / n
        slope = cov / var
        icpt = sy / n - slope * sx / n
    if y.shape[1]:
        first = y[:, 0]
        const = np.all(np.where(mask, y == first[:, None], True), axis=1)
        inf = np.isinf(first)
        slope = np.where(const, np.where(inf, np.nan, 0.0), slope)
        icpt = np.where(const, np.where(inf, np.nan, first), icpt)
    return slope, icpt, ok


def deriv(w: Windows, a: tuple[F64, ...]) -> Result:
    n = w.vs.size
    first_t = w.ts[np.minimum(w.lo, max(n - 1, 0))] if n else np.zeros(w.lo.size, np.int64)
    slope, _, ok = _regression(w, first_t)
    return slope, ok


def predict_linear(w: Windows, a: tuple[F64, ...]) -> Result:
    # the intercept is at the evaluation time (a[1], ms), not at an @-shifted window end
    at = a[1].astype(np.int64) if len(a) > 1 else w.t
    slope, icpt, ok = _regression(w, at)
    return slope * a[0] + icpt, ok


def double_exponential_smoothing(w: Windows, a: tuple[F64, ...]) -> Result:
    """Holt's linear smoothing of each window; one vector step per sample position, across
    all windows at once."""
    sf, tf = a[0], a[1]
    n = w.count
    ok = n >= 2
    m, _mask = w.gather(w.vs, np.nan)
    out = np.full(w.lo.size, np.nan)
    if m.shape[1] < 2:
        return out, ok
    with np.errstate(all="ignore"):
        s0 = m[:, 0].copy()
        s1 = m[:, 0].copy()
        b = m[:, 1] - m[:, 0]
        for j in range(1, m.shape[1]):
            act = j < n
            nb = tf * (s1 - s0) + (1 - tf) * b if j > 1 else b
            ns1 = sf * m[:, j] + (1 - sf) * (s1 + nb)
            b = np.where(act, nb, b)
            s0 = np.where(act, s1, s0)
            s1 = np.where(act, ns1, s1)
    valid = (sf > 0) & (sf < 1) & (tf > 0) & (tf < 1)
    out = np.where(ok & valid, s1, np.nan)
    return out, ok


def ts_of(kind: str) -> Rollup:
    def fn(w: Windows, a: tuple[F64, ...]) -> Result:
        out = np.full(w.lo.size, np.nan)
        ok = w.count > 0
        for i in np.flatnonzero(ok):
            seg = w.vs[w.lo[i] : w.hi[i]]
            tseg = w.ts[w.lo[i] : w.hi[i]]
            if kind == "last":
                j = seg.size - 1
            elif kind == "first":
                j = 0
            elif kind == "max":
                j = int(np.nanargmax(seg)) if not np.all(np.isnan(seg)) else seg.size - 1
                j = (
                    seg.size - 1 - int(np.argmax(seg[::-1] == seg[j]))
                    if not math.isnan(seg[j])
                    else j
                )
            else:
                j = int(np.nanargmin(seg)) if not np.all(np.isnan(seg)) else seg.size - 1
                j = (
                    seg.size - 1 - int(np.argmax(seg[::-1] == seg[j]))
                    if not math.isnan(seg[j])
                    else j
                )
            out[i] = tseg[j] / 1000.0
        return out, ok

    return fn


ROLLUPS: dict[str, Rollup] = {
    "sum_over_time": sum_over_time,
    "count_over_time": count_over_time,
    "avg_over_time": avg_over_time,
    "max_over_time": max_over_time,
    "min_over_time": min_over_time,
    "last_over_time": last_over_time,
    "first_over_time": first_over_time,
    "present_over_time": present_over_time,
    "stddev_over_time": stddev_over_time,
    "stdvar_over_time": stdvar_over_time,
    "quantile_over_time": quantile_over_time,
    "mad_over_time": mad_over_time,
    "changes": changes,
    "resets": resets,
    "rate": rate,
    "increase": increase,
    "delta": delta,
    "irate": irate,
    "idelta": idelta,
    "deriv": deriv,
    "predict_linear": predict_linear,
    "double_exponential_smoothing": double_exponential_smoothing,
    "ts_of_last_over_time": ts_of("last"),
    "ts_of_first_over_time": ts_of("first"),
    "ts_of_max_over_time": ts_of("max"),
    "ts_of_min_over_time": ts_of("min"),
}
