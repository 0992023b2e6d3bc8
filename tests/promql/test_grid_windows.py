"""Window bounds on a step grid (arithmetic counting) equal the searched ones."""

from __future__ import annotations

import numpy as np

from omtsdb.model import Labels
from omtsdb.promql.engine.evaluator import FlatSeries
from omtsdb.storage.interface import SeriesBatch, SeriesData


def test_grid_windows_equal_searched_windows() -> None:
    rng = np.random.default_rng(4)
    for trial in range(300):
        ns = int(rng.integers(1, 8))
        series = []
        for i in range(ns):
            n = int(rng.integers(1, 60))
            ts = np.unique(rng.integers(-50_000, 400_000, n)).astype(np.int64)
            series.append(SeriesData(Labels({"i": str(i)}), ts, np.zeros(ts.size)))
        flat = FlatSeries.of(SeriesBatch.of(series))
        step = int(rng.integers(1, 40_000))
        nt = int(rng.integers(1, 40))
        end = int(rng.integers(-100_000, 300_000)) + np.arange(nt, dtype=np.int64) * step
        rng_ms = int(rng.integers(0, 200_000))
        start = end - rng_ms
        lo, hi = flat.windows(start, end)
        want_lo, want_hi = flat._searched_windows(start, end)
        assert np.array_equal(lo, want_lo), trial
        assert np.array_equal(hi, want_hi), trial


def test_single_step_window_holding_everything() -> None:
    rng = np.random.default_rng(6)
    for trial in range(100):
        series = []
        for i in range(int(rng.integers(1, 6))):
            ts = np.unique(rng.integers(1000, 2000, int(rng.integers(1, 30)))).astype(np.int64)
            series.append(SeriesData(Labels({"i": str(i)}), ts, np.zeros(ts.size)))
        flat = FlatSeries.of(SeriesBatch.of(series))
        end = np.array([int(rng.integers(1995, 2100))])
        start = end - int(rng.integers(end[0] - 1005, end[0] - 990))
        lo, hi = flat.windows(start, end)
        want_lo, want_hi = flat._searched_windows(start, end)
        assert np.array_equal(lo, want_lo), trial
        assert np.array_equal(hi, want_hi), trial
