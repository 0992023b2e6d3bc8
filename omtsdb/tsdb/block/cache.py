"""The decoded-chunk cache shared by all blocks."""

from __future__ import annotations

import threading
from collections import OrderedDict

from omtsdb.model.samples import F64, I64

Entry = tuple[I64, F64]


class ChunkCache:
    """Decoded chunks (read-only arrays) shared by all blocks, within a byte budget: dashboards
    ask for the same recent ranges again and again.

    Recency is kept per block (least recently read block first out), and within a block in
    order of decoding: a look-up then costs one plain dict ``get`` per chunk, with no
    bookkeeping per chunk (an exact per-chunk LRU cost ~0.4 µs a chunk, more than the rest of an
    instant query's select)."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.bytes = 0
        self.hits = 0
        self.misses = 0
        self._blocks: OrderedDict[int, dict[int, Entry]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple[int, int]) -> Entry | None:
        return self.get_many(key[0], [key[1]])[0]

    def get_many(self, block: int, rows: list[int]) -> list[Entry | None]:
        """The cached chunks ``rows`` of ``block`` (None where not cached)."""
        with self._lock:
            d = self._blocks.get(block)
            if d is None:
                self.misses += len(rows)
                return [None] * len(rows)
            self._blocks.move_to_end(block)
            out = list(map(d.get, rows))
            misses = out.count(None)
            self.hits += len(rows) - misses
            self.misses += misses
            return out

    def put(self, key: tuple[int, int], value: Entry) -> None:
        size = value[0].nbytes + value[1].nbytes
        if size > self.max_bytes:
            return
        for a in value:
            a.flags.writeable = False
        block, row = key
        with self._lock:
            d = self._blocks.get(block)
            if d is None:
                d = self._blocks[block] = {}
            elif row in d:
                return
            d[row] = value
            self._blocks.move_to_end(block)
            self.bytes += size
            while self.bytes > self.max_bytes:
                oldest = next(iter(self._blocks))
                chunks = self._blocks[oldest]
                t, v = chunks.pop(next(iter(chunks)))
                self.bytes -= t.nbytes + v.nbytes
                if not chunks:
                    del self._blocks[oldest]

    def drop_block(self, key: int) -> None:
        with self._lock:
            for t, v in self._blocks.pop(key, {}).values():
                self.bytes -= t.nbytes + v.nbytes


CHUNK_CACHE = ChunkCache(256 * 2**20)
