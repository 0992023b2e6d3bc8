"""Classic-histogram quantiles over ``le`` buckets, vectorised across steps."""

from __future__ import annotations

import numpy as np

from omtsdb.model.samples import F64

BoolArr = np.ndarray[tuple[int, ...], np.dtype[np.bool_]]
SMALL_DELTA_TOLERANCE = 1e-12


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
    for s in np.flatnonzero(ok):
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
            c = np.bincount(inv, weights=c)
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
