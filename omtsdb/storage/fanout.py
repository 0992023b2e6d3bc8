"""A primary storage merged with secondaries (a PostgreSQL tier, a remote-read peer).

``FanoutStorage(primary, {"name": secondary, ...})`` is a ``Queryable``: its queriers ask the
primary and every secondary and merge what they answer as the TSDB merges its head and blocks
(series with equal labels merged sample-wise, the primary winning at equal timestamps). A
failing primary fails the select; a failing secondary only costs its data: the failure becomes
a warning in the answer (``SeriesBatch.warnings``, ``Querier.warnings()``), which the API
writes into the envelope, as Prometheus's fanout storage does. A query timeout is never
swallowed. Secondaries are asked one after the other, on the caller's thread.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TypeVar

from omtsdb.errors import QueryTimeoutError
from omtsdb.model.matchers import Matcher
from omtsdb.storage.interface import (
    Querier,
    QuerierBase,
    Queryable,
    SelectHints,
    SeriesBatch,
    check_matchers,
)
from omtsdb.storage.merge import merge_selects

T = TypeVar("T")


class FanoutStorage:
    """``Queryable`` over a primary and named secondaries."""

    def __init__(self, primary: Queryable, secondaries: Mapping[str, Queryable]) -> None:
        self.primary = primary
        self.secondaries = dict(secondaries)

    def querier(self, mint: int, maxt: int) -> FanoutQuerier:
        primary = self.primary.querier(mint, maxt)
        q = FanoutQuerier(primary, [])
        for name, s in self.secondaries.items():
            try:
                q.secondaries.append((name, s.querier(mint, maxt)))
            except QueryTimeoutError:
                raise
            except Exception as e:
                q.warn(secondary_warning(name, e))
        return q


def secondary_warning(name: str, err: BaseException) -> str:
    return f"secondary storage {name!r} failed: {err or type(err).__name__}"


class FanoutQuerier(QuerierBase):
    def __init__(self, primary: Querier, secondaries: list[tuple[str, Querier]]) -> None:
        self.primary = primary
        self.secondaries = secondaries

    def _ask(self, fn: Callable[[Querier], T]) -> tuple[list[T], list[str]]:
        """``fn`` of the primary (errors raised) and of each secondary that succeeds, and the
        warnings for those that failed (also recorded on this querier)."""
        out = [fn(self.primary)]
        failed = []
        for name, q in self.secondaries:
            try:
                out.append(fn(q))
            except QueryTimeoutError:
                raise
            except Exception as e:
                failed.append(secondary_warning(name, e))
                self.warn(failed[-1])
        return out, failed

    def select_batch(
        self,
        matchers: Sequence[Matcher],
        mint: int,
        maxt: int,
        hints: SelectHints | None = None,
    ) -> SeriesBatch:
        check_matchers(matchers)
        parts, failed = self._ask(lambda q: q.select_batch(matchers, mint, maxt, hints))
        return merge_selects(parts, hints).with_warnings(failed)

    def label_names(self, matchers: Sequence[Matcher], mint: int, maxt: int) -> list[str]:
        got, _ = self._ask(lambda q: q.label_names(matchers, mint, maxt))
        return sorted({n for names in got for n in names})

    def label_values(
        self, name: str, matchers: Sequence[Matcher], mint: int, maxt: int
    ) -> list[str]:
        got, _ = self._ask(lambda q: q.label_values(name, matchers, mint, maxt))
        return sorted({v for vals in got for v in vals})

    def warnings(self) -> list[str]:
        mine = super().warnings()
        inner = [w for _, q in [("", self.primary), *self.secondaries] for w in q.warnings()]
        return list(dict.fromkeys([*mine, *inner]))

    def close(self) -> None:
        for q in [self.primary, *(q for _, q in self.secondaries)]:
            try:
                q.close()
            except Exception:  # a secondary that cannot close cleanly must not fail the query
                if q is self.primary:
                    raise
