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
# Windows up to this many samples always take the sequential compensated sum, so the result is
# bit-for-bit Prometheus's (one vectorised step per column is cheap at this width).
EXACT_WIDTH = 256


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


def kahan_sum(m: F64, mask: BoolArr) -> F64:
    """Compensated sum of the present cells of each row, in column order."""
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
    incremental mean once the running sum would overflow. Present cells must come first in
    each row (as in a gathered window)."""
    rows, width = m.shape
    out = np.full(rows, np.nan)
    if width == 0:
        return out
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
