"""Counter and change functions over windows: changes, resets, rate, increase, delta, irate,
idelta. Counts of changes and resets use cumulative sums of per-sample flags; the counter-reset
correction of rate/increase sums only the reset positions.

rate/increase/irate/resets also honour start timestamps when the samples carry them
(``Windows.st``; see ``counters_st``); without them they take the paths below unchanged.
"""

from __future__ import annotations

import numpy as np

from omtsdb.model.samples import F64, I64
from omtsdb.promql.functions.counters_st import st_overlaps, st_resets
from omtsdb.promql.functions.windows import BoolArr, Result, Windows


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
        if w.st is not None:
            f |= st_resets(w.ts, w.st)
    return _flag_windows(w, f).astype(np.float64), w.count > 0


def _reset_sums(w: Windows, ok: BoolArr, pos: I64 | None = None) -> F64:
    """Per window, the sum of the values just before each counter reset inside it (what a
    reset adds back), as the running sum over all samples would give it, zero where not
    ``ok``. Only the (few) reset positions are summed: adding the zeros between them changes
    nothing, unless a reset value is -0.0 (then the full running sum is taken). ``pos``: the
    samples that follow a reset (default: those smaller than the sample before)."""
    v = w.vs
    if pos is None:
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
    if is_counter and w.st is not None:
        return _extrapolated_st(w, is_rate)
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
    return extrapolate(w, result, first_v, first_t, last_t, is_counter, is_rate), ok


def extrapolate(
    w: Windows,
    result: F64,
    first_v: F64,
    first_t: I64,
    last_t: I64,
    is_counter: bool,
    is_rate: bool,
    zero_at: I64 | None = None,
    use_zero: BoolArr | None = None,
) -> F64:
    """Prometheus's ``extrapolatedRate`` from a window's raw increase ``result``: extend it
    towards the window's edges. Where ``use_zero`` is set, a zero sample is assumed at
    ``zero_at`` (the first sample's start timestamp) instead of extrapolating to the left."""
    cnt = w.count
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
        if zero_at is not None and use_zero is not None:
            np.copyto(to_start, 0.0, where=use_zero)
            np.copyto(sampled, (last_t - zero_at) / 1000.0, where=use_zero)
        interval = sampled + to_start
        interval += to_end
        factor = interval / sampled
        if is_rate:
            factor /= w.range_ms / 1000.0
        out: F64 = result * factor
    return out


def rate(w: Windows, a: tuple[F64, ...]) -> Result:
    return _extrapolated(w, True, True)


def increase(w: Windows, a: tuple[F64, ...]) -> Result:
    return _extrapolated(w, True, False)


def delta(w: Windows, a: tuple[F64, ...]) -> Result:
    return _extrapolated(w, False, False)


def _instant(w: Windows, is_rate: bool) -> Result:
    if is_rate and w.st is not None:
        return _instant_st(w)
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


# -- with start timestamps ----------------------------------------------------------------------
def _extrapolated_st(w: Windows, is_rate: bool) -> Result:
    """rate/increase over samples with start timestamps. A restart told by a start timestamp
    counts as a counter reset; when the first sample's start lies inside the window (after its
    left edge, before the sample), a zero sample is assumed there instead of extrapolating to
    the left, which also gives a result for a single sample. Windows where neither happens
    are exactly the result without start timestamps."""
    assert w.st is not None
    plain = Windows(w.ts, w.vs, w.lo, w.hi, w.t, w.range_ms)
    out, ok = _extrapolated(plain, True, is_rate)
    n = w.vs.size
    if n == 0:
        return out, ok
    cnt = w.count
    lo = np.minimum(w.lo, n - 1)
    st0 = w.st[lo]
    use_zero = (cnt > 0) & (st0 != 0) & (st0 > w.t - w.range_ms) & (st0 < w.ts[lo])
    by_st = st_resets(w.ts, w.st)
    by_st[1:] &= ~(w.vs[1:] < w.vs[:-1])  # restarts not already seen as a value drop
    touched = use_zero | ((_flag_windows(w, by_st) > 0) & (cnt >= 2))
    if not touched.any():
        return out, ok
    rows = np.flatnonzero(touched)
    sub = Windows(w.ts, w.vs, w.lo[rows], w.hi[rows], w.t[rows], w.range_ms, w.st)
    sub_ok = sub.count >= 2
    lo_s, last_i = lo[rows], np.maximum(sub.hi - 1, 0)
    first_v, first_t, last_t = w.vs[lo_s], w.ts[lo_s], w.ts[last_i]
    pos = np.flatnonzero((w.vs[1:] < w.vs[:-1]) | by_st[1:].astype(np.bool_)) + 1
    result = w.vs[last_i] - first_v
    result += _reset_sums(sub, sub_ok | use_zero[rows], pos)
    zero = use_zero[rows]
    np.add(result, first_v, out=result, where=zero)
    got = extrapolate(sub, result, first_v, first_t, last_t, True, is_rate, st0[rows], zero)
    out = out.copy()
    out[rows] = got
    return out, ok | use_zero


def _instant_st(w: Windows) -> Result:
    """irate over samples with start timestamps: a restart told by the last sample's start
    timestamp is a counter reset (the rate is the last value over the interval)."""
    assert w.st is not None
    out, ok = _instant(Windows(w.ts, w.vs, w.lo, w.hi, w.t, w.range_ms), True)
    n = w.vs.size
    if n < 2:
        return out, ok
    i1 = np.clip(w.hi - 1, 0, n - 1)
    flags = st_resets(w.ts, w.st)
    hit = ok & (flags[i1] != 0)
    if hit.any():
        i0 = i1[hit] - 1
        with np.errstate(all="ignore"):
            out = out.copy()
            out[hit] = w.vs[i1[hit]] / ((w.ts[i1[hit]] - w.ts[i0]) / 1000.0)
    return out, ok


def overlapping_windows(w: Windows) -> BoolArr:
    """Per window: some sample's start overlaps the sample before it (rate and increase warn
    about it once per series and step, as Prometheus's ``NewStartTimeOverlapWarning``)."""
    if w.st is None:
        return np.zeros(w.lo.size, np.bool_)
    out: BoolArr = _flag_windows(w, st_overlaps(w.ts, w.st)) > 0
    return out
