"""The counter-reset correction of rate/increase summed over reset positions only is bit for
bit the running sum over all samples."""

from __future__ import annotations

import numpy as np

from omtsdb.promql.functions.counters import _reset_sums
from omtsdb.promql.functions.windows import Windows


def _reference(w: Windows, ok: np.ndarray) -> np.ndarray:  # type: ignore[type-arg]
    v = w.vs
    r = np.zeros(v.size)
    if v.size > 1:
        r[1:] = np.where(v[1:] < v[:-1], v[:-1], 0.0)
    cs = np.concatenate(([0.0], np.cumsum(r)))
    lo1 = np.minimum(w.lo + 1, w.hi)
    return np.where(ok, cs[w.hi] - cs[lo1], 0.0)


def test_reset_sums_bit_exact() -> None:
    rng = np.random.default_rng(9)
    pools = [
        lambda n: np.cumsum(rng.random(n) * 10) % 37,
        lambda n: rng.choice([0.0, -0.0, 1.0, -1.0, np.nan, np.inf, 2.5], n),
        lambda n: rng.normal(size=n) * 1e6,
        lambda n: np.round(rng.random(n) * 3, 1),
    ]
    for trial in range(400):
        n = int(rng.integers(0, 200))
        ts = np.cumsum(rng.integers(1, 30_000, n)).astype(np.int64)
        vs = pools[trial % len(pools)](n).astype(np.float64)
        t = np.sort(rng.integers(0, int(ts[-1]) + 60_000 if n else 1000, 40)).astype(np.int64)
        rng_ms = int(rng.integers(1, 300_000))
        lo = np.searchsorted(ts, t - rng_ms, "right").astype(np.int64)
        hi = np.searchsorted(ts, t, "right").astype(np.int64)
        w = Windows(ts, vs, lo, hi, t, rng_ms)
        ok = (hi - lo) >= 2
        with np.errstate(all="ignore"):
            got, want = _reset_sums(w, ok), _reference(w, ok)
        assert np.array_equal(got.view(np.uint64), want.view(np.uint64))
