"""max/min over windows and over groups: Prometheus keeps the first sample unless a later one is
greater (smaller) or the kept one is NaN, so of +0 and -0 the earlier wins, which numpy's
vectorised ``fmax``/``fmin`` do not guarantee."""

from __future__ import annotations

import math
import struct
from collections.abc import Callable

import numpy as np

from omtsdb.model.labels import Labels
from omtsdb.promql.engine.aggregate import aggregate
from omtsdb.promql.engine.block import Block
from omtsdb.promql.functions.rollups import max_over_time, min_over_time
from omtsdb.promql.functions.windows import windows

Cmp = Callable[[float, float], bool]
GREATER: Cmp = lambda a, b: a > b  # noqa: E731
LESS: Cmp = lambda a, b: a < b  # noqa: E731


def _prometheus(xs: list[float], better: Cmp) -> float:
    kept = xs[0]
    for f in xs:
        if better(f, kept) or math.isnan(kept):
            kept = f
    return kept


def _same(a: float, b: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or struct.pack("<d", a) == struct.pack("<d", b)


def test_window_extremes_keep_the_first_of_equal_values() -> None:
    rng = np.random.default_rng(5)
    pools = [[0.0, -0.0, math.nan, -1.0], [0.0, -0.0, math.nan], [0.0, -0.0, 1.0, -math.inf]]
    for trial in range(150):
        pool = np.array(pools[trial % 3])
        n = int(rng.integers(1, 300))
        vs = pool[rng.integers(0, pool.size, n)]
        ts = np.cumsum(rng.integers(1, 3, n)) * 1000
        t = np.arange(0, int(ts[-1]) + 5000, int(rng.integers(1, 9)) * 1000)
        w = windows(ts, vs, t, int(rng.integers(1, 200)) * 1000)
        for fn, better in ((max_over_time, GREATER), (min_over_time, LESS)):
            got, ok = fn(w, ())
            for i in np.flatnonzero(ok).tolist():
                want = _prometheus(vs[w.lo[i] : w.hi[i]].tolist(), better)
                assert _same(float(got[i]), want), (fn.__name__, trial, i)


def test_group_extremes_keep_the_first_of_equal_values() -> None:
    rng = np.random.default_rng(3)
    pool = np.array([0.0, -0.0, math.nan, 1.0, -1.0])
    for _ in range(100):
        n, steps = int(rng.integers(1, 40)), int(rng.integers(1, 20))
        vals = pool[rng.integers(0, pool.size, (n, steps))]
        mask = rng.random((n, steps)) < 0.8
        groups = [str(int(rng.integers(0, 3))) for _ in range(n)]
        labels = [Labels({"g": g, "i": str(i)}) for i, g in enumerate(groups)]
        for op, better in (("max", GREATER), ("min", LESS)):
            res = aggregate(op, Block(labels, vals, mask), None, ("g",), False)
            for k, lb in enumerate(res.labels):
                for c in range(steps):
                    xs = [vals[i, c] for i in range(n) if groups[i] == lb.get("g") and mask[i, c]]
                    if xs:
                        assert _same(float(res.vals[k, c]), _prometheus(xs, better)), (op, k, c)
