"""The storage contract between writers, the TSDB and the query engine.

Everything is array-shaped: a series comes back as two numpy arrays (int64 millisecond
timestamps, float64 values), never as a per-sample iterator. All time bounds in this module are
**inclusive** milliseconds unless a docstring says otherwise.

Samples may carry a *start timestamp* (ST: when the cumulative count began, or the start of a
delta's interval; OTel's ``StartTimeUnixNano``, Prometheus's "created" time): an optional third
int64 array beside ``ts``/``vs``. ``None`` means no sample has one; inside an array, ``0``
means "unknown" for that sample (as Prometheus's AppenderV2 and OTel use it).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np

from omtsdb.model.labels import Labels
from omtsdb.model.matchers import Matcher
from omtsdb.model.samples import F64, I64


@dataclass(frozen=True, slots=True)
class SeriesData:
    """One series and its samples in a time range: ``ts`` strictly increasing int64 ms,
    ``vs`` float64 of the same length (staleness NaNs included, bit-exact), ``st`` the start
    timestamps (int64 ms, 0 = unknown) or ``None`` when none is known."""

    labels: Labels
    ts: I64
    vs: F64
    st: I64 | None = None

    def __len__(self) -> int:
        return int(self.ts.shape[0])


def empty_series(labels: Labels) -> SeriesData:
    return SeriesData(labels, np.empty(0, np.int64), np.empty(0, np.float64))


@dataclass(frozen=True, slots=True)
class SeriesBatch:
    """Many series with their samples back to back: series ``i`` has ``labels[i]`` and the
    samples ``ts[offsets[i]:offsets[i + 1]]`` (each slice as in :class:`SeriesData`); ``st``
    (when not ``None``) holds a start timestamp per sample, 0 for series or samples without."""

    labels: list[Labels]
    ts: I64
    vs: F64
    offsets: I64  # len(labels) + 1, starting at 0
    st: I64 | None = None

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def lens(self) -> I64:
        out: I64 = np.diff(self.offsets)
        return out

    @classmethod
    def empty(cls) -> SeriesBatch:
        return cls([], np.empty(0, np.int64), np.empty(0, np.float64), np.zeros(1, np.int64))

    @classmethod
    def of(cls, series: Sequence[SeriesData]) -> SeriesBatch:
        if not series:
            return cls.empty()
        lens = np.fromiter((len(s) for s in series), np.int64, len(series))
        st = None
        if any(s.st is not None for s in series):
            st = np.concatenate(
                [s.st if s.st is not None else np.zeros(len(s), np.int64) for s in series]
            )
        return cls(
            [s.labels for s in series],
            np.concatenate([s.ts for s in series]),
            np.concatenate([s.vs for s in series]),
            np.concatenate(([0], np.cumsum(lens))),
            st,
        )

    def series(self) -> list[SeriesData]:
        """One :class:`SeriesData` per series (views into the batch's arrays)."""
        off = self.offsets.tolist()
        ts, vs, st = self.ts, self.vs, self.st
        if st is None:
            return [
                SeriesData(lb, ts[off[i] : off[i + 1]], vs[off[i] : off[i + 1]])
                for i, lb in enumerate(self.labels)
            ]
        out = []
        for i, lb in enumerate(self.labels):
            a, b = off[i], off[i + 1]
            s = st[a:b]
            out.append(SeriesData(lb, ts[a:b], vs[a:b], s if s.any() else None))
        return out

    def without_st(self) -> SeriesBatch:
        """The same samples with no start timestamps."""
        if self.st is None:
            return self
        return SeriesBatch(self.labels, self.ts, self.vs, self.offsets)

    def take(self, keep: np.ndarray[tuple[int], np.dtype[np.bool_]] | None = None) -> SeriesBatch:
        """Only the samples where ``keep`` (one flag per sample) is set, and only the series
        left with samples."""
        st = self.st
        if keep is None or keep.all():
            ts, vs, lens = self.ts, self.vs, self.lens
        else:
            at = np.flatnonzero(keep)
            lens = np.diff(np.searchsorted(at, self.offsets))
            ts, vs = self.ts[at], self.vs[at]
            st = st[at] if st is not None else None
        has = lens > 0
        if has.all():
            if ts is self.ts:
                return self
            return SeriesBatch(self.labels, ts, vs, np.concatenate(([0], np.cumsum(lens))), st)
        labels = [lb for lb, h in zip(self.labels, has.tolist(), strict=True) if h]
        return SeriesBatch(labels, ts, vs, np.concatenate(([0], np.cumsum(lens[has]))), st)


@dataclass(frozen=True, slots=True)
class SelectHints:
    """Optional push-down information; storage may ignore it and must still be correct."""

    start: int = 0
    end: int = 0
    step: int = 0
    func: str = ""
    range_ms: int = 0
    grouping: tuple[str, ...] = ()
    by: bool = False


@dataclass(slots=True)
class Warnings:
    """Non-fatal problems that travel beside data (a failing secondary storage, truncation)."""

    items: list[str] = field(default_factory=list)

    def add(self, msg: str) -> None:
        if msg not in self.items:
            self.items.append(msg)


@runtime_checkable
class Querier(Protocol):
    """Reads series over a fixed time range (the one given to ``Queryable.querier``)."""

    def select(
        self,
        matchers: Sequence[Matcher],
        mint: int,
        maxt: int,
        hints: SelectHints | None = None,
    ) -> list[SeriesData]:
        """Series matching every matcher that have at least one sample with
        ``mint <= t <= maxt``; each carries exactly its samples in that range.
        Sorted by labels (``Labels.sort_key``). At least one matcher must not match the
        empty string, or the call raises ``BadDataError``."""
        ...

    def label_names(self, matchers: Sequence[Matcher], mint: int, maxt: int) -> list[str]:
        """Sorted label names of series (matching all matchers, if any) with samples in range."""
        ...

    def label_values(
        self, name: str, matchers: Sequence[Matcher], mint: int, maxt: int
    ) -> list[str]:
        """Sorted distinct values of label ``name`` over matching series with samples in range."""
        ...

    def close(self) -> None: ...


@runtime_checkable
class Queryable(Protocol):
    def querier(self, mint: int, maxt: int) -> Querier:
        """A querier for the inclusive range [mint, maxt] (ms)."""
        ...


@runtime_checkable
class Appender(Protocol):
    """A write transaction. Nothing is visible to readers or durable before ``commit``."""

    def append(self, labels: Labels, ts: I64, vs: F64, st: I64 | None = None) -> None:
        """Stage samples of one series (ts ascending), with start timestamps ``st`` (same
        length, 0 = unknown) when known. Raises an ``AppendError`` subclass (out of order,
        duplicate timestamp with another value, invalid labels) for bad data; the rest of the
        transaction stays usable."""
        ...

    def commit(self) -> None:
        """Write the staged samples to the WAL (flushed to the OS), then make them visible.
        Returns only after they are durable to the degree the WAL promises."""
        ...

    def rollback(self) -> None:
        """Drop everything staged."""
        ...


@runtime_checkable
class Appendable(Protocol):
    def appender(self) -> Appender: ...


def select_batch(q: Querier, matchers: Sequence[Matcher], mint: int, maxt: int) -> SeriesBatch:
    """``q.select`` as a batch, through ``q.select_batch`` where the querier has one."""
    fn = getattr(q, "select_batch", None)
    if fn is not None:
        got: SeriesBatch = fn(matchers, mint, maxt)
        return got
    return SeriesBatch.of(q.select(matchers, mint, maxt))
