"""Closed head chunks, packed per series into one blob: ``(u32 length, chunk)*``.

A chunk's own header carries its time range, so no per-chunk table or Python object is kept:
per series there is exactly one ``bytes`` object, which keeps the head at a few bytes per
sample.
"""

from __future__ import annotations

import struct

_LEN = struct.Struct("<I")
_N = struct.Struct("<I")  # sample count at offset 4 of a chunk
MERGE_COUNT = 4  # merge this many short trailing chunks into one
LONG_SAMPLES = 960
_RANGE = struct.Struct("<qq")  # mint, maxt at offset 8 of a chunk (see codec.chunk)
_RANGE_OFF = 8


class ClosedChunks:
    __slots__ = ("blobs",)

    def __init__(self) -> None:
        self.blobs: list[bytes] = []

    def add_series(self) -> None:
        self.blobs.append(b"")

    def reset(self, sid: int) -> None:
        self.blobs[sid] = b""

    def add(self, sid: int, data: bytes) -> None:
        self.blobs[sid] = b"".join((self.blobs[sid], _LEN.pack(len(data)), data))

    def _walk(self, sid: int) -> list[tuple[int, int, int, int]]:
        """(start, end, mint, maxt) of every chunk of a series."""
        blob = self.blobs[sid]
        out = []
        off = 0
        n = len(blob)
        while off < n:
            (ln,) = _LEN.unpack_from(blob, off)
            start = off + 4
            mint, maxt = _RANGE.unpack_from(blob, start + _RANGE_OFF)
            out.append((start, start + ln, mint, maxt))
            off = start + ln
        return out

    def count(self, sid: int) -> int:
        return len(self._walk(sid)) if self.blobs[sid] else 0

    def first_mint(self, sid: int) -> int | None:
        blob = self.blobs[sid]
        if not blob:
            return None
        mint: int = _RANGE.unpack_from(blob, 4 + _RANGE_OFF)[0]
        return mint

    def overlapping(self, sid: int, mint: int, maxt: int) -> list[bytes]:
        blob = self.blobs[sid]
        if not blob:
            return []
        return [blob[a:b] for a, b, cmin, cmax in self._walk(sid) if cmax >= mint and cmin <= maxt]

    def drop_before(self, sid: int, mint: int) -> None:
        """Drop the chunks that end before ``mint``."""
        blob = self.blobs[sid]
        if not blob:
            return
        keep_from = None
        for a, _, _, cmax in self._walk(sid):
            if cmax >= mint:
                keep_from = a - 4
                break
        self.blobs[sid] = b"" if keep_from is None else blob[keep_from:]

    def merge_tail(self, sid: int) -> None:
        """When the newest ``MERGE_COUNT`` chunks are all short, re-encode them as one long
        chunk: long chunks compress better and decode with far less per-call overhead."""
        blob = self.blobs[sid]
        if not blob:
            return
        spans = self._walk(sid)
        if len(spans) < MERGE_COUNT:
            return
        tail = spans[-MERGE_COUNT:]
        counts = [_N.unpack_from(blob, a + 4)[0] for a, _, _, _ in tail]
        if sum(counts) > LONG_SAMPLES or max(counts) >= LONG_SAMPLES // 2:
            return
        import numpy as np

        from omtsdb.tsdb import chunks

        parts = [chunks.decode_st(blob[a:b]) for a, b, _, _ in tail]
        ts = np.concatenate([p[0] for p in parts])
        vs = np.concatenate([p[1] for p in parts])
        st = None
        if any(p[2] is not None for p in parts):
            st = np.concatenate([p[2] if p[2] is not None else np.zeros_like(p[0]) for p in parts])
        keep = blob[: tail[0][0] - 4]
        data = chunks.encode(ts, vs, st)
        self.blobs[sid] = b"".join((keep, _LEN.pack(len(data)), data))

    def nbytes(self) -> int:
        return sum(len(b) for b in self.blobs)
