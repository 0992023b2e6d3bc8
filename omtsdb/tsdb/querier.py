"""Queriers over the head and over several sources merged (head + blocks).

``merge_series`` is re-exported for the block writers (compaction, head cuts)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from omtsdb.model.labels import Labels
from omtsdb.model.matchers import Matcher
from omtsdb.storage.interface import (
    Querier,
    QuerierBase,
    SelectHints,
    SeriesBatch,
    SeriesData,
    check_deadline,
    check_matchers,
)
from omtsdb.storage.merge import labels_only_batch, merge_selects
from omtsdb.storage.merge import merge_series as merge_series
from omtsdb.tsdb.head import Head

if TYPE_CHECKING:
    from omtsdb.tsdb.block.reader import Block

_CHECK_EVERY = 256  # series between two deadline checks


class HeadQuerier(QuerierBase):
    """Reads the head; ``floor`` hides head samples older than it (already in blocks)."""

    def __init__(self, head: Head, mint: int, maxt: int, floor: int | None = None) -> None:
        self._head = head
        self._mint = mint
        self._maxt = maxt
        self._floor = floor

    def _clip(self, mint: int) -> int:
        return mint if self._floor is None else max(mint, self._floor)

    def select(
        self,
        matchers: Sequence[Matcher],
        mint: int,
        maxt: int,
        hints: SelectHints | None = None,
    ) -> list[SeriesData]:
        check_matchers(matchers)
        mint = self._clip(mint)
        if mint > maxt:
            return []
        head = self._head
        ids = head.matching(matchers, mint, maxt).tolist()
        if hints is not None and hints.labels_only:
            return labels_only_batch(self._labels_of(ids), hints.limit).series()
        limit = hints.limit if hints is not None else 0
        if limit > 0 and len(ids) > limit:
            # the first ``limit`` series in label order that have samples in range
            keyed = [(lb.sort_key(), sid) for sid in ids if (lb := head.labels_of(sid))]
            ids = [sid for _, sid in sorted(keyed)]
        out = []
        for k, sid in enumerate(ids):
            if k % _CHECK_EVERY == 0:
                check_deadline(hints)
            s = head.series_samples(sid, mint, maxt)
            if s is not None:
                out.append(s)
                if len(out) == limit:
                    break
        out.sort(key=lambda s: s.labels.sort_key())
        return out

    def _labels_of(self, ids: list[int]) -> list[Labels]:
        return [lb for sid in ids if (lb := self._head.labels_of(sid)) is not None]

    def _labels(self, matchers: Sequence[Matcher], mint: int, maxt: int) -> list[int]:
        mint = self._clip(mint)
        ids = (
            self._head.matching(matchers, mint, maxt)
            if matchers
            else self._head.matching((), mint, maxt)
        )
        return [int(i) for i in ids]

    def label_names(self, matchers: Sequence[Matcher], mint: int, maxt: int) -> list[str]:
        names: set[str] = set()
        for sid in self._labels(matchers, mint, maxt):
            lb = self._head.labels_of(sid)
            if lb is not None:
                names.update(lb.names())
        return sorted(names)

    def label_values(
        self, name: str, matchers: Sequence[Matcher], mint: int, maxt: int
    ) -> list[str]:
        vals: set[str] = set()
        for sid in self._labels(matchers, mint, maxt):
            lb = self._head.labels_of(sid)
            if lb is not None:
                v = lb.get(name)
                if v:
                    vals.add(v)
        return sorted(vals)


class BlockQuerier(QuerierBase):
    """The Querier view of one block."""

    def __init__(self, block: Block) -> None:
        self._b = block

    def select(
        self,
        matchers: Sequence[Matcher],
        mint: int,
        maxt: int,
        hints: SelectHints | None = None,
    ) -> list[SeriesData]:
        return self.select_batch(matchers, mint, maxt, hints).series()

    def select_batch(
        self,
        matchers: Sequence[Matcher],
        mint: int,
        maxt: int,
        hints: SelectHints | None = None,
    ) -> SeriesBatch:
        check_matchers(matchers)
        check_deadline(hints)
        if hints is not None and hints.labels_only:
            return labels_only_batch(self._b.series_labels(matchers, mint, maxt), hints.limit)
        got = self._b.select_batch(matchers, mint, maxt)
        return got.head(hints.limit) if hints is not None else got

    def label_names(self, matchers: Sequence[Matcher], mint: int, maxt: int) -> list[str]:
        return sorted(self._b.label_names(matchers))

    def label_values(
        self, name: str, matchers: Sequence[Matcher], mint: int, maxt: int
    ) -> list[str]:
        return sorted(self._b.label_values(name, matchers))


class MergeQuerier(QuerierBase):
    """Merges several queriers: series with equal labels are merged sample-wise."""

    def __init__(self, queriers: Sequence[Querier]) -> None:
        self._qs = list(queriers)

    def select(
        self,
        matchers: Sequence[Matcher],
        mint: int,
        maxt: int,
        hints: SelectHints | None = None,
    ) -> list[SeriesData]:
        check_matchers(matchers)
        if len(self._qs) == 1:
            return self._qs[0].select(matchers, mint, maxt, hints)
        if hints is not None and hints.labels_only:
            return self.select_batch(matchers, mint, maxt, hints).series()
        groups: dict[object, list[SeriesData]] = {}
        for q in self._qs:
            check_deadline(hints)
            for s in q.select(matchers, mint, maxt, hints):
                groups.setdefault(s.labels, []).append(s)
        out = [merge_series(p) for p in groups.values()]
        out.sort(key=lambda s: s.labels.sort_key())
        if hints is not None and hints.limit > 0:
            del out[hints.limit :]
        return out

    def select_batch(
        self,
        matchers: Sequence[Matcher],
        mint: int,
        maxt: int,
        hints: SelectHints | None = None,
    ) -> SeriesBatch:
        """``select`` as one :class:`SeriesBatch` (same series, same samples)."""
        check_matchers(matchers)
        parts = []
        for q in self._qs:
            check_deadline(hints)
            parts.append(q.select_batch(matchers, mint, maxt, hints))
        return merge_selects(parts, hints)

    def label_names(self, matchers: Sequence[Matcher], mint: int, maxt: int) -> list[str]:
        names: set[str] = set()
        for q in self._qs:
            names.update(q.label_names(matchers, mint, maxt))
        return sorted(names)

    def label_values(
        self, name: str, matchers: Sequence[Matcher], mint: int, maxt: int
    ) -> list[str]:
        vals: set[str] = set()
        for q in self._qs:
            vals.update(q.label_values(name, matchers, mint, maxt))
        return sorted(vals)

    def warnings(self) -> list[str]:
        mine = super().warnings()
        return list(dict.fromkeys([*mine, *(w for q in self._qs for w in q.warnings())]))

    def close(self) -> None:
        for q in self._qs:
            q.close()
