"""Range-vector functions, evaluated for one series at every step at once.

The window of step ``i`` is the left-open interval ``(t[i] - range, t[i]]``: samples
``ts[lo[i]:hi[i]]`` with ``lo``/``hi`` from one ``np.searchsorted`` each. Window contents are
gathered into a ``[steps, width]`` matrix (``width`` = the widest window) with a mask, so sums,
extremes, variances and regressions are whole-matrix reductions; counts of changes and resets
use cumulative sums of per-sample flags. Stale markers are removed before a rollup sees a series.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from omtsdb.model.samples import F64, I64
from omtsdb.promql.functions.kahan import (
    EXACT_WIDTH,
    ROW_LOOP_COLUMNS,
    kahan_mean,
    kahan_mean_cols,
    kahan_sum,
    kahan_sum_cols,
    needs_compensation,
)

BoolArr = np.ndarray[tuple[int, ...], np.dtype[np.bool_]]
MAX_CELLS = 4_000_000


@dataclass(frozen=True, slots=True)
class Windows:
    ts: I64  # samples of one series, stale markers removed
    vs: F64
    lo: I64  # per step
    hi: I64
    t: I64  # step times (window ends, inclusive)
    range_ms: int

    @property
    def count(self) -> I64:
        out: I64 = self.hi - self.lo
        return out

    def gather(self, arr: F64 | I64, fill: float = np.nan) -> tuple[np.ndarray, BoolArr]:
        """``[steps, width]`` matrix of the window contents and its mask."""
        cnt = self.count
        width = int(cnt.max()) if cnt.size else 0
        if width == 0 or arr.size == 0:
            return np.full((cnt.size, 0), fill), np.zeros((cnt.size, 0), np.bool_)
        # rows of a sliding-window view over the array padded by ``width`` values
        padded = np.empty(arr.size + width, arr.dtype)
        padded[: arr.size] = arr
        padded[arr.size :] = fill if arr.dtype.kind == "f" else arr[-1]
        m = sliding_window_view(padded, width)[self.lo]
        mask = np.arange(width) < cnt[:, None]
        if m.dtype.kind == "f":
            np.copyto(m, fill, where=~mask)
        return m, mask

    def gather_cols(self, arr: F64) -> F64:
        """``[width, steps]`` matrix of the window contents (C order, absent cells 0): the
        transpose of ``gather``, built row by row when there are many steps (one ``take`` per
        window position instead of a strided transposing copy)."""
        cnt = self.count
        if cnt.size < ROW_LOOP_COLUMNS:
            return np.array(self.gather(arr, 0.0)[0].T, order="C")
        width = int(cnt.max())
        padded = np.empty(arr.size + 1, arr.dtype)
        padded[:-1] = arr
        padded[-1] = 0.0
        out = np.empty((width, cnt.size), arr.dtype)
        idx = self.lo.copy()
        for j in range(width):
            np.take(padded, idx, out=out[j], mode="clip")  # past the end: the 0
            idx += 1
        np.copyto(out, 0.0, where=np.arange(width)[:, None] >= cnt[None, :])
        return out


def windows(ts: I64, vs: F64, t: I64, range_ms: int) -> Windows:
    lo = np.searchsorted(ts, t - range_ms, "right").astype(np.int64)
    hi = np.searchsorted(ts, t, "right").astype(np.int64)
    return Windows(ts, vs, lo, hi, t, range_ms)


Result = tuple[F64, BoolArr]
Rollup = Callable[[Windows, tuple[F64, ...]], Result]


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


def _extreme(w: Windows, fn: Callable[..., F64]) -> Result:
    m, _mask = w.gather(w.vs, np.nan)
    if m.shape[1] == 0:
        return np.full(w.lo.size, np.nan), w.count > 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        out = fn(m, axis=1)
    return out, w.count > 0


def max_over_time(w: Windows, a: tuple[F64, ...]) -> Result:
    return _extreme(w, np.nanmax)


def min_over_time(w: Windows, a: tuple[F64, ...]) -> Result:
    return _extreme(w, np.nanmin)


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


def _flag_windows(w: Windows, flags: I64) -> I64:
    """Sum of per-sample flags f[j] (j >= 1, comparing j with j-1) over j in (lo, hi)."""
    cs = np.concatenate(([0], np.cumsum(flags)))
    lo1 = np.minimum(w.lo + 1, w.hi)
    out: I64 = np.where(w.hi > w.lo, cs[w.hi] - cs[lo1], 0)
    return out


def changes(w: Windows, a: tuple[F64, ...]) -> Result:
    v = w.vs
    f = np.zeros(v.size, np.int64)
    if v.size > 1:
        same = (v[1:] == v[:-1]) | (np.isnan(v[1:]) & np.isnan(v[:-1]))
        f[1:] = ~same
    return _flag_windows(w, f).astype(np.float64), w.count > 0


def resets(w: Windows, a: tuple[F64, ...]) -> Result:
    v = w.vs
    f = np.zeros(v.size, np.int64)
    if v.size > 1:
        f[1:] = v[1:] < v[:-1]
    return _flag_windows(w, f).astype(np.float64), w.count > 0


def _reset_sums(w: Windows, ok: BoolArr) -> F64:
    """Per window, the sum of the values just before each counter reset inside it (what a
    reset adds back), as the running sum over all samples would give it, zero where not
    ``ok``. Only the (few) reset positions are summed: adding the zeros between them changes
    nothing, unless a reset value is -0.0 (then the full running sum is taken)."""
    v = w.vs
    pos = np.flatnonzero(v[1:] < v[:-1]) + 1
    if pos.size == 0:
        return np.zeros(w.lo.size)
    vals = v[pos - 1]
    lo1 = np.minimum(w.lo + 1, w.hi)
    if np.any((vals == 0) & np.signbit(vals)):
        r = np.zeros(v.size)
        r[pos] = vals
        cs = np.concatenate(([0.0], np.cumsum(r)))
        out: F64 = np.where(ok, cs[w.hi] - cs[lo1], 0.0)
        return out
    cs = np.concatenate(([0.0], np.cumsum(vals)))
    a = np.searchsorted(pos, w.hi, "left")
    b = np.searchsorted(pos, lo1, "left")
    out = np.where(ok, cs[a] - cs[b], 0.0)
    return out


def _extrapolated(w: Windows, is_counter: bool, is_rate: bool) -> Result:
    cnt = w.count
    ok = cnt >= 2
    n = w.vs.size
    if n == 0:
        return np.full(cnt.size, np.nan), ok
    lo = np.minimum(w.lo, n - 1)
    last_i = w.hi - 1
    np.maximum(last_i, 0, out=last_i)
    first_v, last_v = w.vs[lo], w.vs[last_i]
    first_t, last_t = w.ts[lo], w.ts[last_i]
    result = last_v - first_v
    if is_counter:
        result += _reset_sums(w, ok)
    with np.errstate(all="ignore"):
        d_start = first_t - w.t
        d_start += w.range_ms
        to_start = d_start / 1000.0
        to_end = (w.t - last_t) / 1000.0
        sampled = (last_t - first_t) / 1000.0
        avg_dt = sampled / np.maximum(cnt - 1, 1)
        thresh = avg_dt * 1.1
        half = avg_dt / 2
        # Prometheus 3: cap at half an interval beyond the threshold first, then (counters)
        # never extrapolate below zero.
        np.copyto(to_start, half, where=to_start >= thresh)
        if is_counter:
            zero_ok = (result > 0) & (first_v >= 0)
            to_zero = first_v / result
            to_zero *= sampled
            np.copyto(to_zero, to_start, where=~zero_ok)
            np.minimum(to_start, to_zero, out=to_start)
        np.copyto(to_end, half, where=to_end >= thresh)
        interval = sampled + to_start
        interval += to_end
        factor = interval / sampled
        if is_rate:
            factor /= w.range_ms / 1000.0
        out = result * factor
    return out, ok


def rate(w: Windows, a: tuple[F64, ...]) -> Result:
    return _extrapolated(w, True, True)


def increase(w: Windows, a: tuple[F64, ...]) -> Result:
    return _extrapolated(w, True, False)


def delta(w: Windows, a: tuple[F64, ...]) -> Result:
    return _extrapolated(w, False, False)


def _instant(w: Windows, is_rate: bool) -> Result:
    cnt = w.count
    ok = cnt >= 2
    n = w.vs.size
    if n < 2:
        return np.full(cnt.size, np.nan), np.zeros(cnt.size, np.bool_)
    i1 = np.clip(w.hi - 1, 0, n - 1)
    i0 = np.clip(w.hi - 2, 0, n - 1)
    last, prev = w.vs[i1], w.vs[i0]
    with np.errstate(all="ignore"):
        if is_rate:
            res = np.where(last < prev, last, last - prev)
            dt = (w.ts[i1] - w.ts[i0]) / 1000.0
            out = res / dt
        else:
            out = last - prev
    return out, ok


def irate(w: Windows, a: tuple[F64, ...]) -> Result:
    return _instant(w, True)


def idelta(w: Windows, a: tuple[F64, ...]) -> Result:
    return _instant(w, False)


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
