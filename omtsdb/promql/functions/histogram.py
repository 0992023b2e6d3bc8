"""Classic-histogram quantiles over ``le`` buckets, vectorised across steps."""

from __future__ import annotations

import numpy as np

from omtsdb.model.samples import F64

BoolArr = np.ndarray[tuple[int, ...], np.dtype[np.bool_]]
SMALL_DELTA_TOLERANCE = 1e-12


def _quantile_cols(q: F64, ub: F64, c: F64) -> F64:
    """Prometheus's bucketQuantile for monotonic cumulative counts ``c[nb, k]``."""
    nb, k = c.shape
    out = np.full(k, np.nan)
    if nb < 2 or not np.isinf(ub[-1]) or ub[-1] < 0:
        return out
    total = c[-1]
    with np.errstate(all="ignore"):
        rank = q * total
        b = (c[:-1] < rank[None, :]).sum(axis=0)
        cols = np.arange(k)
        prev_c = np.where(b > 0, c[np.maximum(b - 1, 0), cols], 0.0)
        start = np.where(b > 0, ub[np.maximum(b - 1, 0)], 0.0)
        end = ub[np.minimum(b, nb - 1)]
        cnt = c[np.minimum(b, nb - 1), cols] - prev_c
        interp = start + (end - start) * ((rank - prev_c) / cnt)
        interp = np.where(cnt == 0, start, interp)
    res = np.where(b == nb - 1, ub[nb - 2], interp)
    res = np.where((b == 0) & (ub[0] <= 0), ub[0], res)
    res = np.where((total == 0) | np.isnan(total), np.nan, res)
    res = np.where(q < 0, -np.inf, np.where(q > 1, np.inf, res))
    res = np.where(np.isnan(q), np.nan, res)
    out[:] = res
    return out


def bucket_quantile(q: F64, upper: F64, counts: F64, present: BoolArr) -> tuple[F64, BoolArr, bool]:
    """Quantile ``q[step]`` of buckets ``upper[nb]`` with cumulative ``counts[nb, step]``
    (``present`` marks buckets with a sample at a step). Returns values, where a value exists,
    and whether counts had to be forced monotonic (Prometheus's info annotation)."""
    order = np.argsort(upper, kind="stable")
    upper, counts, present = upper[order], counts[order], present[order]
    ns = counts.shape[1]
    out = np.full(ns, np.nan)
    ok: BoolArr = np.asarray(present.any(axis=0), dtype=np.bool_)
    fixed = False
    full = present.all(axis=0)
    uniq_bounds = upper.size < 2 or bool(np.all(upper[1:] != upper[:-1]))
    if uniq_bounds and full.any():
        # the common case, vectorised over steps: every bucket present, distinct bounds
        cols = np.flatnonzero(full)
        c = counts[:, cols]
        mono = np.maximum.accumulate(c, axis=0)
        dip = mono - c
        tol = SMALL_DELTA_TOLERANCE * np.maximum(np.abs(mono), 1.0)
        if bool((dip > tol).any()):
            fixed = True
        out[cols] = _quantile_cols(q[cols], upper, mono)
    rest = np.flatnonzero(ok & ~(full if uniq_bounds else np.zeros(ns, np.bool_)))
    for s in rest:
        m = present[:, s]
        ub = upper[m]
        c = counts[m, s].copy()
        qq = q[s]
        if np.isnan(qq):
            out[s] = np.nan
            continue
        if qq < 0:
            out[s] = -np.inf
            continue
        if qq > 1:
            out[s] = np.inf
            continue
        if ub.size == 0 or not np.isinf(ub[-1]) or ub[-1] < 0:
            out[s] = np.nan
            continue
        # merge duplicate bounds (Prometheus coalesces buckets with the same le)
        if ub.size > 1 and np.any(ub[1:] == ub[:-1]):
            uniq, inv = np.unique(ub, return_inverse=True)
            c = np.bincount(inv, weights=c).astype(np.float64)
            ub = uniq
        # ensure monotonicity, ignoring tiny floating point dips
        for i in range(1, c.size):
            if c[i] < c[i - 1]:
                if c[i - 1] - c[i] > SMALL_DELTA_TOLERANCE * max(abs(c[i - 1]), 1.0):
                    fixed = True
                c[i] = c[i - 1]
        if ub.size < 2:
            out[s] = np.nan
            continue
        total = c[-1]
        if total == 0 or np.isnan(total):
            out[s] = np.nan
            continue
        rank = qq * total
        b = int(np.searchsorted(c[:-1], rank, "left"))
        if b == ub.size - 1:
            out[s] = ub[-2]
            continue
        if b == 0 and ub[0] <= 0:
            out[s] = ub[0]
            continue
        start = 0.0 if b == 0 else ub[b - 1]
        end = ub[b]
        count = c[b] - (c[b - 1] if b > 0 else 0.0)
        rank -= c[b - 1] if b > 0 else 0.0
        out[s] = start + (end - start) * (rank / count) if count else start
    return out, ok, fixed
