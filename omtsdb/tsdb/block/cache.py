"""The decoded-chunk cache shared by all blocks."""

from __future__ import annotations

import threading
from collections import OrderedDict

from omtsdb.model.samples import F64, I64


class ChunkCache:
    """Decoded chunks (read-only arrays) shared by all blocks, least recently used first out,
    within a byte budget: dashboards ask for the same recent ranges again and again."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.bytes = 0
        self.hits = 0
        self.misses = 0
        self._d: OrderedDict[tuple[int, int], tuple[I64, F64]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple[int, int]) -> tuple[I64, F64] | None:
        with self._lock:
            got = self._d.get(key)
            if got is None:
                self.misses += 1
                return None
            self._d.move_to_end(key)
            self.hits += 1
            return got

    def get_many(self, block: int, rows: list[int]) -> list[tuple[I64, F64] | None]:
        """``get`` for many chunks of one block under one lock."""
        keys = [(block, r) for r in rows]
        with self._lock:
            d = self._d
            out = list(map(d.get, keys))
            misses = out.count(None)
            if misses:
                for k, got in zip(keys, out, strict=True):
                    if got is not None:
                        d.move_to_end(k)
            else:
                for k in keys:
                    d.move_to_end(k)
            self.hits += len(rows) - misses
            self.misses += misses
            return out

    def put(self, key: tuple[int, int], value: tuple[I64, F64]) -> None:
        size = value[0].nbytes + value[1].nbytes
        if size > self.max_bytes:
            return
        for a in value:
            a.flags.writeable = False
        with self._lock:
            if key in self._d:
                return
            self._d[key] = value
            self.bytes += size
            while self.bytes > self.max_bytes:
                _, (t, v) = self._d.popitem(last=False)
                self.bytes -= t.nbytes + v.nbytes

    def drop_block(self, key: int) -> None:
        with self._lock:
            for k in [k for k in self._d if k[0] == key]:
                t, v = self._d.pop(k)
                self.bytes -= t.nbytes + v.nbytes


CHUNK_CACHE = ChunkCache(256 * 2**20)
