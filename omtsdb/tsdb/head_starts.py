"""Start timestamps of the head's open chunks, kept only for series that have any.

A series gets a row of ``capacity`` int64 start timestamps (aligned with its open chunk's
columns) the first time one of its samples arrives with a known start time, and keeps it until
the series is removed. Series that never had one cost a single ``-1`` in ``row``, and a head
where no series has one never touches this store beyond checking ``used``.
"""

from __future__ import annotations

import numpy as np

from omtsdb.model.samples import I64

I32 = np.ndarray[tuple[int], np.dtype[np.int32]]


class OpenStarts:
    __slots__ = ("capacity", "free", "mat", "row", "used")

    def __init__(self, capacity: int, nseries: int) -> None:
        self.capacity = capacity
        self.row: I32 = np.full(nseries, -1, np.int32)  # per series: its row in mat, or -1
        self.mat: I64 = np.zeros((0, capacity), np.int64)
        self.free: list[int] = []
        self.used = 0  # series holding a row

    def grow(self, nseries: int) -> None:
        if nseries > self.row.shape[0]:
            out = np.full(nseries, -1, np.int32)
            out[: self.row.shape[0]] = self.row
            self.row = out

    def assign(self, sids: I64) -> None:
        """Give a (zeroed) row to each of ``sids`` (unique) that has none."""
        need = sids[self.row[sids] < 0]
        if need.size == 0:
            return
        k = min(len(self.free), need.size)
        reuse = np.array([self.free.pop() for _ in range(k)], np.int32)
        start = self.mat.shape[0]
        extra = need.size - k
        if extra:
            cap = max(start + extra, start * 2, 16)
            mat = np.zeros((cap, self.capacity), np.int64)
            mat[:start] = self.mat
            self.mat = mat
            self.free.extend(range(cap - 1, start + extra - 1, -1))  # the spare rows, low first
        rows = np.concatenate((reuse, np.arange(start, start + extra, dtype=np.int32)))
        self.mat[rows] = 0
        self.row[need] = rows
        self.used += int(need.size)

    def release(self, sid: int) -> None:
        r = int(self.row[sid])
        if r >= 0:
            self.row[sid] = -1
            self.free.append(r)
            self.used -= 1

    def write(self, refs: I64, cols: I64, st: I64 | None) -> None:
        """Store the start timestamps of samples at (series ``refs``, column ``cols``); samples
        of series without a row are skipped, and ``st=None`` writes unknown (0)."""
        rows = self.row[refs]
        has = rows >= 0
        if not has.any():
            return
        if has.all():
            self.mat[rows, cols] = 0 if st is None else st
        else:
            self.mat[rows[has], cols[has]] = 0 if st is None else st[has]

    def of(self, sid: int, fill: int) -> I64 | None:
        """A copy of the first ``fill`` start timestamps of a series' open chunk, or ``None``
        when the series has no row."""
        r = int(self.row[sid])
        if r < 0:
            return None
        out: I64 = self.mat[r, :fill].copy()
        return out

    def set(self, sid: int, st: I64) -> None:
        """Replace the open-chunk start timestamps of a series that has a row."""
        r = int(self.row[sid])
        if r >= 0:
            self.mat[r, : st.shape[0]] = st
