"""The windows of a range-vector function: for every step, the samples in ``(t - range, t]``.

``lo``/``hi`` per step come from one ``np.searchsorted`` each; window contents are gathered into
a ``[steps, width]`` matrix (``width`` = the widest window) with a mask, so reductions over
windows are whole-matrix operations.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from omtsdb.model.samples import F64, I64
from omtsdb.promql.functions.kahan import ROW_LOOP_COLUMNS

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
    st: I64 | None = None  # start timestamps beside ts (0 = unknown), for the counter functions

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
