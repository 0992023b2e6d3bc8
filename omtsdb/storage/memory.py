"""A small in-memory storage implementing the Protocols of ``interface``.

A test double that lives next to the interface it fakes; it is also handy for evaluating PromQL
over data held in memory (the .test runner's ``load``). It scans every series on select, so it is
not meant for large data: the TSDB's head and postings are.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from omtsdb.errors import BadDataError, DuplicateSampleError, OutOfOrderError
from omtsdb.model.labels import Labels
from omtsdb.model.matchers import Matcher
from omtsdb.model.samples import F64, I64
from omtsdb.storage.interface import (
    QuerierBase,
    SelectHints,
    SeriesData,
    check_deadline,
    check_matchers,
)

_NO_TS = np.empty(0, np.int64)
_NO_VS = np.empty(0, np.float64)


class MemoryStorage:
    """Queryable and Appendable over a dict of series."""

    def __init__(self) -> None:
        self._series: dict[Labels, tuple[I64, F64]] = {}
        self._st: dict[Labels, I64] = {}  # start timestamps of the series that have any

    # Appendable
    def appender(self) -> MemoryAppender:
        return MemoryAppender(self)

    # Queryable
    def querier(self, mint: int, maxt: int) -> MemoryQuerier:
        return MemoryQuerier(self, mint, maxt)

    def _add(self, labels: Labels, ts: I64, vs: F64, st: I64 | None) -> None:
        old = self._series.get(labels)
        old_st = self._st.get(labels)
        if st is not None or old_st is not None:
            n_old = 0 if old is None else old[0].size
            prev = old_st if old_st is not None else np.zeros(n_old, np.int64)
            self._st[labels] = np.concatenate(
                [prev, st if st is not None else np.zeros(ts.size, np.int64)]
            )
        if old is not None:
            ts = np.concatenate([old[0], ts])
            vs = np.concatenate([old[1], vs])
        self._series[labels] = (ts, vs)


class MemoryAppender:
    def __init__(self, store: MemoryStorage) -> None:
        self._store = store
        self._staged: list[tuple[Labels, I64, F64, I64 | None]] = []

    def append(self, labels: Labels, ts: I64, vs: F64, st: I64 | None = None) -> None:
        ts = np.ascontiguousarray(ts, np.int64)
        vs = np.ascontiguousarray(vs, np.float64)
        if st is not None:
            st = np.ascontiguousarray(st, np.int64)
            if st.shape != ts.shape:
                raise BadDataError("start timestamps must match the timestamps in length")
            if not st.any():
                st = None
        if ts.size == 0:
            return
        if ts.size > 1 and np.any(np.diff(ts) <= 0):
            raise OutOfOrderError()
        old = self._store._series.get(labels)
        if old is not None and old[0].size and ts[0] <= old[0][-1]:
            if ts[0] == old[0][-1] and old[1][-1:].view(np.uint64)[0] != vs[:1].view(np.uint64)[0]:
                raise DuplicateSampleError()
            if ts[0] < old[0][-1]:
                raise OutOfOrderError()
            ts, vs = ts[1:], vs[1:]
            st = st[1:] if st is not None else None
        self._staged.append((labels, ts, vs, st))

    def commit(self) -> None:
        for labels, ts, vs, st in self._staged:
            self._store._add(labels, ts, vs, st)
        self._staged.clear()

    def rollback(self) -> None:
        self._staged.clear()


class MemoryQuerier(QuerierBase):
    def __init__(self, store: MemoryStorage, mint: int, maxt: int) -> None:
        self._store = store
        self._mint = mint
        self._maxt = maxt

    def select(
        self,
        matchers: Sequence[Matcher],
        mint: int,
        maxt: int,
        hints: SelectHints | None = None,
    ) -> list[SeriesData]:
        check_matchers(matchers)
        labels_only = hints is not None and hints.labels_only
        out: list[SeriesData] = []
        for k, (labels, (ts, vs)) in enumerate(list(self._store._series.items())):
            if k % 256 == 0:
                check_deadline(hints)
            if not all(m.matches(labels.get(m.name)) for m in matchers):
                continue
            lo = int(np.searchsorted(ts, mint, "left"))
            hi = int(np.searchsorted(ts, maxt, "right"))
            if hi > lo:
                if labels_only:
                    out.append(SeriesData(labels, _NO_TS, _NO_VS))
                    continue
                st = self._store._st.get(labels)
                sts = st[lo:hi] if st is not None else None
                out.append(SeriesData(labels, ts[lo:hi], vs[lo:hi], sts))
        out.sort(key=lambda s: s.labels.sort_key())
        if hints is not None and hints.limit > 0:
            del out[hints.limit :]
        return out

    def _matching(self, matchers: Sequence[Matcher], mint: int, maxt: int) -> list[Labels]:
        if matchers:
            hints = SelectHints(start=mint, end=maxt, func="series")
            return [s.labels for s in self.select(matchers, mint, maxt, hints)]
        res = []
        for labels, (ts, _) in self._store._series.items():
            lo = int(np.searchsorted(ts, mint, "left"))
            hi = int(np.searchsorted(ts, maxt, "right"))
            if hi > lo:
                res.append(labels)
        return res

    def label_names(self, matchers: Sequence[Matcher], mint: int, maxt: int) -> list[str]:
        names: set[str] = set()
        for labels in self._matching(matchers, mint, maxt):
            names.update(labels.names())
        return sorted(names)

    def label_values(
        self, name: str, matchers: Sequence[Matcher], mint: int, maxt: int
    ) -> list[str]:
        vals = {lb.get(name) for lb in self._matching(matchers, mint, maxt)}
        vals.discard("")
        return sorted(vals)
