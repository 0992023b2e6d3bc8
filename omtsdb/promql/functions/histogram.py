"""Classic-histogram kernels over ``le`` buckets, vectorised across steps.

Every kernel takes the upper bounds ``ub[nb]`` (sorted ascending, distinct) and the cumulative
counts ``c[nb, k]`` of one histogram at ``k`` steps; the caller groups series into histograms
and coalesces buckets with equal bounds (see ``engine.histcalls``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from omtsdb.model.samples import F64

BoolArr = np.ndarray[tuple[int, ...], np.dtype[np.bool_]]
SMALL_DELTA_TOLERANCE = 1e-12
MIN_NORMAL = 2.2250738585072014e-308
MAX_FLOAT = 1.7976931348623157e308


def almost_equal(a: F64, b: F64, eps: float) -> BoolArr:
    """Prometheus's ``almost.Equal`` element-wise (NaN equals NaN)."""
    with np.errstate(all="ignore"):
        abs_sum = np.abs(a) + np.abs(b)
        diff = np.abs(a - b)
        tiny = (a == 0) | (b == 0) | (abs_sum < MIN_NORMAL)
        rel = np.where(tiny, diff < eps * MIN_NORMAL, diff / np.minimum(abs_sum, MAX_FLOAT) < eps)
    out: BoolArr = (np.isnan(a) & np.isnan(b)) | (a == b) | rel
    return out


@dataclass(slots=True)
class Forced:
    """Where monotonicity had to be forced, per step: flag, lowest/highest bucket bound
    touched and the largest decrease removed."""

    forced: BoolArr
    min_bucket: F64
    max_bucket: F64
    max_diff: F64


def ensure_monotonic(ub: F64, c: F64) -> tuple[F64, Forced]:
    """Remove decreases between successive buckets and ignore numerically insignificant
    differences (relative delta below 1e-12) in either direction, like Prometheus's
    ``ensureMonotonicAndIgnoreSmallDeltas``. One vector step per bucket, over all steps."""
    nb, k = c.shape
    out = c.copy()
    forced = np.zeros(k, np.bool_)
    min_b = np.full(k, np.inf)
    max_b = np.full(k, -np.inf)
    max_diff = np.zeros(k)
    if nb == 0:
        return out, Forced(forced, min_b, max_b, max_diff)
    prev = out[0].copy()
    for i in range(1, nb):
        cur = out[i]
        same = cur == prev
        small = ~same & almost_equal(prev, cur, SMALL_DELTA_TOLERANCE)
        down = ~same & ~small & (cur < prev)
        keep_prev = small | down
        if down.any():
            forced |= down
            min_b = np.where(down, np.minimum(min_b, ub[i]), min_b)
            max_b = np.where(down, np.maximum(max_b, ub[i]), max_b)
            with np.errstate(invalid="ignore"):
                max_diff = np.where(down, np.fmax(max_diff, prev - cur), max_diff)
        out[i] = np.where(keep_prev, prev, cur)
        prev = np.where(keep_prev | same, prev, cur)
    return out, Forced(forced, min_b, max_b, max_diff)


def bucket_quantile(q: F64, ub: F64, c: F64) -> F64:
    """``histogram_quantile`` of monotonic cumulative counts ``c[nb, k]`` at quantiles
    ``q[k]``; the highest bound must be +Inf (else NaN)."""
    nb, k = c.shape
    with np.errstate(all="ignore"):
        if nb < 2 or not np.isposinf(ub[-1]):
            res = np.full(k, np.nan)
        else:
            total = c[-1]
            rank = q * total
            # sort.Search semantics on a monotonic array: the first bucket with count >= rank
            ge = c[:-1] >= rank[None, :]
            b = np.where(ge.any(axis=0), np.argmax(ge, axis=0), nb - 1)
            cols = np.arange(k)
            has_prev = b > 0
            prev_c = np.where(has_prev, c[np.maximum(b - 1, 0), cols], 0.0)
            start = np.where(has_prev, ub[np.maximum(b - 1, 0)], 0.0)
            end = ub[np.minimum(b, nb - 1)]
            cnt = c[np.minimum(b, nb - 1), cols] - prev_c
            res = start + (end - start) * ((rank - prev_c) / cnt)
            res = np.where(b == nb - 1, ub[nb - 2], res)
            res = np.where((b == 0) & (ub[0] <= 0), ub[0], res)
            res = np.where(total == 0, np.nan, res)
    res = np.where(q < 0, -np.inf, np.where(q > 1, np.inf, res))
    out: F64 = np.where(np.isnan(q), np.nan, res)
    return out


def bucket_fraction(lower: F64, upper: F64, ub: F64, c: F64) -> F64:
    """``histogram_fraction`` of cumulative counts ``c[nb, k]`` between ``lower[k]`` and
    ``upper[k]``, interpolating linearly inside buckets (Prometheus's ``BucketFraction``; no
    monotonicity fix)."""
    nb, k = c.shape
    if nb == 0 or not np.isposinf(ub[-1]):
        return np.full(k, np.nan)
    count = c[-1]
    lb = np.empty(nb)
    lb[0] = 0.0 if ub[0] > 0 else -np.inf
    lb[1:] = ub[:-1]
    rank = np.zeros_like(c)  # cumulative count below each bucket
    rank[1:] = c[:-1]
    with np.errstate(all="ignore"):

        def at(x: F64) -> tuple[F64, BoolArr]:
            lbx = lb[:, None]
            on_edge = lbx >= x[None, :]
            inside = (lbx < x[None, :]) & (x[None, :] < ub[:, None])
            hit = on_edge | inside
            i = np.argmax(hit, axis=0)
            cols = np.arange(k)
            r, cc, lo, hi = rank[i, cols], c[i, cols], lb[i], ub[i]
            interp = np.where(np.isneginf(lo), cc, r + (cc - r) * (x - lo) / (hi - lo))
            val = np.where(on_edge[i, cols], r, interp)
            found: BoolArr = np.asarray(hit.any(axis=0))
            out_v: F64 = np.where(~found | (val > count), count, val)
            return out_v, found

        lo_rank, _ = at(lower)
        hi_rank, _ = at(upper)
        res = (hi_rank - lo_rank) / count
    res = np.where(lower >= upper, 0.0, res)
    out: F64 = np.where((count == 0) | np.isnan(lower) | np.isnan(upper), np.nan, res)
    return out
