"""Which queries may run on the event loop: a cost bound from what they select.

Handing a query to the pool and its answer back costs a thread wake-up each way (~0.05 ms on
an idle machine, more under load), as much as evaluating a small instant query, and the pool
buys no parallelism for Python code. So a query whose cost is known to be small runs inline.
The cost is what the query *selects* (series and samples, counted by :class:`Counted` around
the storage), not how long it took, and it is enforced, not guessed:

- a query text runs inline only after a pool run selected at most ``max_series`` series and
  ``max_samples`` samples (:class:`CostTable`, bounded, least recent forgotten);
- the inline run itself is stopped as soon as it selects more than that (``Counted`` raises
  :class:`OverBudget` after the select that crossed the bound) or runs past its time slice
  (the engine's deadline, which storage checks between series), and is then run again in the
  pool, whose run records the new cost: data that grew sends the query back to the pool once.

Thread model: ``CostTable`` is shared by the loop and the pool threads (one lock);
``Counted`` belongs to one query.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Hashable, Sequence
from dataclasses import dataclass

from omtsdb.model.matchers import Matcher
from omtsdb.storage.interface import Querier, QuerierBase, Queryable, SelectHints, SeriesBatch


@dataclass(frozen=True, slots=True)
class Cost:
    series: int
    samples: int


class OverBudget(Exception):
    """An inline run selected more than its bound (internal: the query goes to the pool)."""


class Counted:
    """A ``Queryable`` that counts what one query selects, optionally within a budget."""

    def __init__(self, inner: Queryable, budget: Cost | None = None) -> None:
        self.inner = inner
        self.budget = budget
        self.series = 0
        self.samples = 0

    def querier(self, mint: int, maxt: int) -> Querier:
        return _CountedQuerier(self, self.inner.querier(mint, maxt))

    @property
    def cost(self) -> Cost:
        return Cost(self.series, self.samples)

    def add(self, batch: SeriesBatch) -> None:
        self.series += len(batch)
        self.samples += int(batch.ts.size)
        b = self.budget
        if b is not None and (self.series > b.series or self.samples > b.samples):
            raise OverBudget


class _CountedQuerier(QuerierBase):
    def __init__(self, owner: Counted, inner: Querier) -> None:
        self._owner = owner
        self._inner = inner

    def select_batch(
        self,
        matchers: Sequence[Matcher],
        mint: int,
        maxt: int,
        hints: SelectHints | None = None,
    ) -> SeriesBatch:
        got = self._inner.select_batch(matchers, mint, maxt, hints)
        self._owner.add(got)
        return got

    def label_names(self, matchers: Sequence[Matcher], mint: int, maxt: int) -> list[str]:
        return self._inner.label_names(matchers, mint, maxt)

    def label_values(
        self, name: str, matchers: Sequence[Matcher], mint: int, maxt: int
    ) -> list[str]:
        return self._inner.label_values(name, matchers, mint, maxt)

    def warnings(self) -> list[str]:
        return self._inner.warnings()

    def close(self) -> None:
        self._inner.close()


class CostTable:
    """The cost of the last pool run of recently seen queries (text and shape)."""

    def __init__(self, bound: Cost, size: int = 4096) -> None:
        self.bound = bound
        self.size = size
        self._last: OrderedDict[Hashable, Cost] = OrderedDict()
        self._lock = threading.Lock()

    def cheap(self, key: Hashable) -> bool:
        with self._lock:
            got = self._last.get(key)
        b = self.bound
        return got is not None and got.series <= b.series and got.samples <= b.samples

    def record(self, key: Hashable, cost: Cost) -> None:
        with self._lock:
            self._last[key] = cost
            self._last.move_to_end(key)
            if len(self._last) > self.size:
                self._last.popitem(last=False)

    def forget(self, key: Hashable) -> None:
        with self._lock:
            self._last.pop(key, None)
