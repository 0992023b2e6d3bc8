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

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, Self, runtime_checkable

import numpy as np

from omtsdb.errors import BadDataError, QueryTimeoutError
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


@dataclass(frozen=True, slots=True)
class SeriesBatch:
    """Many series with their samples back to back: series ``i`` has ``labels[i]`` and the
    samples ``ts[offsets[i]:offsets[i + 1]]`` (each slice as in :class:`SeriesData`); ``st``
    (when not ``None``) holds a start timestamp per sample, 0 for series or samples without;
    ``warnings`` travel with the data to the query result's envelope."""

    labels: list[Labels]
    ts: I64
    vs: F64
    offsets: I64  # len(labels) + 1, starting at 0
    st: I64 | None = None
    # non-fatal problems met while selecting (a failing secondary storage, a skipped block)
    warnings: tuple[str, ...] = ()

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
        return SeriesBatch(self.labels, self.ts, self.vs, self.offsets, None, self.warnings)

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
            return SeriesBatch(
                self.labels, ts, vs, np.concatenate(([0], np.cumsum(lens))), st, self.warnings
            )
        labels = [lb for lb, h in zip(self.labels, has.tolist(), strict=True) if h]
        offsets = np.concatenate(([0], np.cumsum(lens[has])))
        return SeriesBatch(labels, ts, vs, offsets, st, self.warnings)

    def with_warnings(self, warnings: Sequence[str]) -> SeriesBatch:
        """The same batch with ``warnings`` added (each once)."""
        if not warnings:
            return self
        merged = tuple(dict.fromkeys((*self.warnings, *warnings)))
        return SeriesBatch(self.labels, self.ts, self.vs, self.offsets, self.st, merged)

    def head(self, n: int) -> SeriesBatch:
        """The first ``n`` series (all when ``n`` is 0 or at least ``len(self)``)."""
        if n <= 0 or n >= len(self.labels):
            return self
        end = int(self.offsets[n])
        st = self.st[:end] if self.st is not None else None
        return SeriesBatch(
            self.labels[:n], self.ts[:end], self.vs[:end], self.offsets[: n + 1], st, self.warnings
        )


# What ``SelectHints.func`` is for a metadata-only select (``/api/v1/series``, label look-ups):
# the querier may return the matching series without their samples.
SERIES_FUNC = "series"


@dataclass(frozen=True, slots=True)
class SelectHints:
    """What a select is for, as Prometheus's ``storage.SelectHints``. Storage may use it to do
    less work and must stay correct when it ignores it, except for the three fields it must
    honour (``limit``, ``func == "series"`` is allowed to drop samples, ``deadline``).

    - ``start``/``end``: the range the engine needs (ms, inclusive), ``step`` its resolution
      (0 for instant queries), ``range_ms`` the range of a range selector (0 otherwise);
    - ``func``: the function or aggregation directly around the selector (``rate``, ``sum``;
      empty past a binary operator), or ``"series"`` (:data:`SERIES_FUNC`) when only the
      series' labels are wanted: the querier may then return every series with empty sample
      arrays, chosen by their chunks overlapping the range as Prometheus does, and decode
      nothing;
    - ``grouping``/``by``: the aggregation's labels when the selector sits right under one;
    - ``limit``: at most this many series, the first in label order (0: all);
    - ``deadline``: a ``time.monotonic()`` instant past which the querier may stop with
      ``QueryTimeoutError`` (checked between series or batches, never in the middle of one).
    """

    start: int = 0
    end: int = 0
    step: int = 0
    func: str = ""
    grouping: tuple[str, ...] = ()
    by: bool = False
    range_ms: int = 0
    limit: int = 0
    deadline: float | None = None

    @property
    def labels_only(self) -> bool:
        return self.func == SERIES_FUNC


def check_matchers(matchers: Sequence[Matcher]) -> None:
    """A select needs at least one matcher that does not match the empty string."""
    if not matchers or all(m.matches_empty for m in matchers):
        raise BadDataError("at least one matcher must not match the empty string")


def check_deadline(hints: SelectHints | None) -> None:
    """Raise ``QueryTimeoutError`` when ``hints`` carries a deadline that has passed."""
    if hints is not None and hints.deadline is not None and time.monotonic() > hints.deadline:
        raise QueryTimeoutError("query timed out in expression evaluation")


@runtime_checkable
class Querier(Protocol):
    """Reads series over a fixed time range (the one given to ``Queryable.querier``).

    One querier serves one query or one API request and is closed when it is done; it is a
    context manager (``with queryable.querier(mint, maxt) as q: ...``). Implementations
    usually derive from :class:`QuerierBase`, which supplies the context manager, ``select``
    from ``select_batch`` (or the other way round) and the warnings list.
    """

    def select(
        self,
        matchers: Sequence[Matcher],
        mint: int,
        maxt: int,
        hints: SelectHints | None = None,
    ) -> list[SeriesData]:
        """Series matching every matcher that have at least one sample with
        ``mint <= t <= maxt``; each carries exactly its samples in that range (none with
        ``hints.func == "series"``). Sorted by labels (``Labels.sort_key``). At least one
        matcher must not match the empty string, or the call raises ``BadDataError``."""
        ...

    def select_batch(
        self,
        matchers: Sequence[Matcher],
        mint: int,
        maxt: int,
        hints: SelectHints | None = None,
    ) -> SeriesBatch:
        """``select`` as one :class:`SeriesBatch` (same series, same samples), with the
        warnings met on the way."""
        ...

    def label_names(self, matchers: Sequence[Matcher], mint: int, maxt: int) -> list[str]:
        """Sorted label names of series (matching all matchers, if any) with samples in range."""
        ...

    def label_values(
        self, name: str, matchers: Sequence[Matcher], mint: int, maxt: int
    ) -> list[str]:
        """Sorted distinct values of label ``name`` over matching series with samples in range."""
        ...

    def warnings(self) -> list[str]:
        """Non-fatal problems met by this querier's calls so far (each once), for answers
        that carry no batch (label names and values)."""
        ...

    def close(self) -> None: ...

    def __enter__(self) -> Self: ...

    def __exit__(self, *exc: object) -> None: ...


class QuerierBase:
    """Shared parts of queriers: the context manager, the warnings list, and whichever of
    ``select``/``select_batch`` the subclass does not implement itself (it must implement
    one of them)."""

    _warnings: list[str] | None = None

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
        if type(self).select is QuerierBase.select:
            raise NotImplementedError(f"{type(self).__name__} implements neither select")
        return SeriesBatch.of(self.select(matchers, mint, maxt, hints))

    def warn(self, msg: str) -> None:
        """Record a warning (kept once)."""
        if self._warnings is None:
            self._warnings = []
        if msg not in self._warnings:
            self._warnings.append(msg)

    def warnings(self) -> list[str]:
        return list(self._warnings or ())

    def close(self) -> None:
        pass

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


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
