"""Queriers over the head and over several sources merged (head + blocks)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from omtsdb.errors import BadDataError
from omtsdb.model.matchers import Matcher
from omtsdb.storage.interface import Querier, SelectHints, SeriesBatch, SeriesData, select_batch
from omtsdb.tsdb.batchmerge import merge_batches
from omtsdb.tsdb.head import Head

if TYPE_CHECKING:
    from omtsdb.tsdb.block.reader import Block


def check_select_matchers(matchers: Sequence[Matcher]) -> None:
    if not matchers or all(m.matches_empty for m in matchers):
        raise BadDataError("at least one matcher must not match the empty string")


class HeadQuerier:
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
        check_select_matchers(matchers)
        mint = self._clip(mint)
        if mint > maxt:
            return []
        out = []
        for sid in self._head.matching(matchers, mint, maxt):
            s = self._head.series_samples(int(sid), mint, maxt)
            if s is not None:
                out.append(s)
        out.sort(key=lambda s: s.labels.sort_key())
        return out

    def select_batch(self, matchers: Sequence[Matcher], mint: int, maxt: int) -> SeriesBatch:
        return SeriesBatch.of(self.select(matchers, mint, maxt))

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

    def close(self) -> None:
        pass


class BlockQuerier:
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
        check_select_matchers(matchers)
        return self._b.select(matchers, mint, maxt, hints)

    def select_batch(self, matchers: Sequence[Matcher], mint: int, maxt: int) -> SeriesBatch:
        check_select_matchers(matchers)
        return self._b.select_batch(matchers, mint, maxt)

    def label_names(self, matchers: Sequence[Matcher], mint: int, maxt: int) -> list[str]:
        return sorted(self._b.label_names(matchers))

    def label_values(
        self, name: str, matchers: Sequence[Matcher], mint: int, maxt: int
    ) -> list[str]:
        return sorted(self._b.label_values(name, matchers))

    def close(self) -> None:
        pass


def merge_series(parts: list[SeriesData]) -> SeriesData:
    """One series from pieces held in several places: time order, duplicates dropped (the
    first piece wins at equal timestamps)."""
    if len(parts) == 1:
        return parts[0]
    parts = sorted(parts, key=lambda s: int(s.ts[0]) if s.ts.size else 0)
    ts = np.concatenate([p.ts for p in parts])
    vs = np.concatenate([p.vs for p in parts])
    st = None
    if any(p.st is not None for p in parts):
        st = np.concatenate([p.st if p.st is not None else np.zeros_like(p.ts) for p in parts])
    if ts.size > 1 and not np.all(ts[1:] > ts[:-1]):
        order = np.argsort(ts, kind="stable")
        ts, vs = ts[order], vs[order]
        keep = np.concatenate(([True], ts[1:] != ts[:-1]))
        ts, vs = ts[keep], vs[keep]
        if st is not None:
            st = st[order][keep]
    return SeriesData(parts[0].labels, ts, vs, st)


class MergeQuerier:
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
        check_select_matchers(matchers)
        if len(self._qs) == 1:
            return self._qs[0].select(matchers, mint, maxt, hints)
        groups: dict[object, list[SeriesData]] = {}
        for q in self._qs:
            for s in q.select(matchers, mint, maxt, hints):
                groups.setdefault(s.labels, []).append(s)
        out = [merge_series(p) for p in groups.values()]
        out.sort(key=lambda s: s.labels.sort_key())
        return out

    def select_batch(self, matchers: Sequence[Matcher], mint: int, maxt: int) -> SeriesBatch:
        """``select`` as one :class:`SeriesBatch` (same series, same samples)."""
        check_select_matchers(matchers)
        return merge_batches([select_batch(q, matchers, mint, maxt) for q in self._qs])

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

    def close(self) -> None:
        for q in self._qs:
            q.close()
