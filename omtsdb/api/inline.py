"""Which queries run directly on the event loop instead of the query thread pool.

Handing a query to the pool and its answer back costs about 0.15-0.2 ms (a thread wake-up
each way), as much as evaluating a small instant query. Dashboards ask the same queries again
and again, so the duration of the previous run of the same query (text and shape) is a good
guess of the next one: queries whose last run took under ``limit`` seconds run inline, which
blocks the loop for no longer than about that; new or slower ones go to the pool. The pool
buys no parallelism for Python code (the GIL), only a responsive loop during long queries,
so a few milliseconds of blocking are the better trade.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Hashable

INLINE_LIMIT_S = 0.005


class QueryCosts:
    """The last evaluation time of recently seen queries (bounded, least recent dropped)."""

    def __init__(self, limit_s: float = INLINE_LIMIT_S, size: int = 4096) -> None:
        self.limit_s = limit_s
        self.size = size
        self._last: OrderedDict[Hashable, float] = OrderedDict()
        self._lock = threading.Lock()

    def cheap(self, key: Hashable) -> bool:
        with self._lock:
            got = self._last.get(key)
        return got is not None and got < self.limit_s

    def record(self, key: Hashable, seconds: float) -> None:
        with self._lock:
            self._last[key] = seconds
            self._last.move_to_end(key)
            if len(self._last) > self.size:
                self._last.popitem(last=False)
