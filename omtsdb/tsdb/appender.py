"""The head appender: a write transaction over the head, logged to the WAL on commit.

Samples are staged as arrays. ``commit`` validates them against the committed state under the
head lock (vectorised: sort by (series, time), compare with each series' newest sample), writes
series and samples records to the WAL, and only then applies them to the head. A commit returns
after the WAL has flushed its records.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from omtsdb.errors import AppendError, BadDataError, DuplicateSampleError, OutOfOrderError
from omtsdb.model.labels import Labels
from omtsdb.model.samples import F64, I64
from omtsdb.tsdb.wal import SamplesRecord, SeriesRecord

if TYPE_CHECKING:
    from omtsdb.tsdb.db import DB


@dataclass(slots=True)
class AppendReport:
    """What ``append_columns`` / ``commit`` refused (counts plus the first error seen)."""

    out_of_order: int = 0
    duplicates: int = 0
    out_of_bounds: int = 0
    invalid: int = 0
    first_error: AppendError | None = None
    appended: int = 0
    new_series: int = 0

    def note(self, err: AppendError, n: int) -> None:
        if isinstance(err, OutOfOrderError):
            self.out_of_order += n
        elif isinstance(err, DuplicateSampleError):
            self.duplicates += n
        elif type(err).__name__ == "OutOfBoundsError":
            self.out_of_bounds += n
        else:
            self.invalid += n
        if self.first_error is None:
            self.first_error = err

    @property
    def rejected(self) -> int:
        return self.out_of_order + self.duplicates + self.out_of_bounds + self.invalid


@dataclass(slots=True)
class _Staged:
    refs: list[I64] = field(default_factory=list)
    ts: list[I64] = field(default_factory=list)
    vs: list[F64] = field(default_factory=list)
    st: list[I64 | None] = field(default_factory=list)  # None: no start timestamps

    def starts(self) -> I64 | None:
        """All staged start timestamps (0 where unknown), or None when none is known."""
        if all(s is None for s in self.st):
            return None
        return np.concatenate(
            [
                s if s is not None else np.zeros_like(t)
                for s, t in zip(self.st, self.ts, strict=True)
            ]
        )


def _as_starts(st: I64 | None, ts: I64) -> I64 | None:
    """Start timestamps as int64 matching ``ts``; ``None`` when absent or all unknown."""
    if st is None:
        return None
    st = np.ascontiguousarray(st, np.int64)
    if st.shape != ts.shape:
        raise BadDataError("start timestamps must match the timestamps in length")
    return st if st.any() else None


class HeadAppender:
    """Implements ``storage.interface.Appender`` plus a columnar bulk method."""

    def __init__(self, db: DB) -> None:
        self._db = db
        self._staged = _Staged()
        self.report = AppendReport()

    def _ref(self, labels: Labels) -> int:
        head = self._db.head
        sid = head.lookup(labels)
        if sid is not None:
            return sid
        labels.validate()
        if not labels.name and self._db.require_metric_name:
            raise BadDataError(f"series {labels} has no metric name")
        sid, created = head.get_or_create(labels)
        if created:
            self.report.new_series += 1
        return sid

    def ref(self, labels: Labels) -> int:
        """The head id of ``labels``, creating the series (after validating it) if needed."""
        return self._ref(labels)

    def append_refs(self, refs: I64, ts: I64, vs: F64, st: I64 | None = None) -> AppendReport:
        """Stage samples by head id (from ``ref``): sample ``i`` belongs to series ``refs[i]``
        (``st``: optional start timestamps, 0 = unknown). Bad samples are skipped and counted
        in the returned report, as ``append_columns``."""
        refs = np.ascontiguousarray(refs, np.int64)
        ts = np.ascontiguousarray(ts, np.int64)
        vs = np.ascontiguousarray(vs, np.float64)
        st = _as_starts(st, ts)
        refs, ts, vs, st, err, nbad = self._validate(refs, ts, vs, st)
        if err is not None:
            self.report.note(err, nbad)
        self._stage(refs, ts, vs, st)
        return self.report

    def append(self, labels: Labels, ts: I64, vs: F64, st: I64 | None = None) -> None:
        """Stage samples of one series (``st``: optional start timestamps, 0 = unknown);
        raises for samples the head would refuse."""
        ts = np.ascontiguousarray(ts, np.int64)
        vs = np.ascontiguousarray(vs, np.float64)
        if ts.shape != vs.shape or ts.ndim != 1:
            raise BadDataError("timestamps and values must be 1-D arrays of equal length")
        st = _as_starts(st, ts)
        if ts.size == 0:
            return
        sid = self._ref(labels)
        refs = np.full(ts.shape[0], sid, np.int64)
        refs, ts, vs, st, err, _ = self._validate(refs, ts, vs, st)
        if err is not None:
            raise err
        self._stage(refs, ts, vs, st)

    def append_columns(
        self, series: Sequence[Labels], idx: I64, ts: I64, vs: F64, st: I64 | None = None
    ) -> AppendReport:
        """Stage many series at once: sample ``i`` belongs to ``series[idx[i]]`` (``st``:
        optional start timestamps, 0 = unknown). Bad samples (out of order, conflicting
        duplicates, invalid series) are skipped and counted in the returned report; the rest
        is staged."""
        idx = np.ascontiguousarray(idx, np.int64)
        ts = np.ascontiguousarray(ts, np.int64)
        vs = np.ascontiguousarray(vs, np.float64)
        st = _as_starts(st, ts)
        sids = np.empty(len(series), np.int64)
        bad = np.zeros(len(series), np.bool_)
        for i, lb in enumerate(series):
            try:
                sids[i] = self._ref(lb)
            except AppendError as e:
                bad[i] = True
                self.report.note(e, 1)
            except BadDataError as e:
                bad[i] = True
                self.report.note(AppendError(str(e)), 1)
        if bad.any():
            keep = ~bad[idx]
            idx, ts, vs = idx[keep], ts[keep], vs[keep]
            st = None if st is None else st[keep]
        refs = sids[idx]
        refs, ts, vs, st, err, nbad = self._validate(refs, ts, vs, st)
        if err is not None:
            self.report.note(err, nbad)
        self._stage(refs, ts, vs, st)
        return self.report

    def _stage(self, refs: I64, ts: I64, vs: F64, st: I64 | None = None) -> None:
        if refs.size:
            self._staged.refs.append(refs)
            self._staged.ts.append(ts)
            self._staged.vs.append(vs)
            self._staged.st.append(st)

    def _validate(
        self, refs: I64, ts: I64, vs: F64, st: I64 | None
    ) -> tuple[I64, I64, F64, I64 | None, AppendError | None, int]:
        """Sort by (ref, ts); drop exact duplicates; drop and report samples that are out of
        order or conflict with a committed or staged sample at the same timestamp (a start
        timestamp plays no part: the first sample kept wins)."""
        n = refs.shape[0]
        if n == 0:
            return refs, ts, vs, st, None, 0
        if n > 1:
            order = np.lexsort((ts, refs))
            if not np.all(order[1:] > order[:-1]):
                refs, ts, vs = refs[order], ts[order], vs[order]
                st = None if st is None else st[order]
        bits = vs.view(np.uint64)
        keep = np.ones(n, np.bool_)
        err: AppendError | None = None
        nbad = 0
        if n > 1:
            same = (refs[1:] == refs[:-1]) & (ts[1:] == ts[:-1])
            if same.any():
                dup_same_val = same & (bits[1:] == bits[:-1])
                conflict = same & ~dup_same_val
                keep[1:][same] = False
                if conflict.any():
                    err = DuplicateSampleError()
                    nbad += int(conflict.sum())
        last_t, last_bits = self._db.head.last_of(refs)
        older = ts < last_t
        equal = ts == last_t
        if older.any():
            err = err or OutOfOrderError()
            nbad += int((older & keep).sum())
            keep &= ~older
        if equal.any():
            conflict = equal & (bits != last_bits) & keep
            if conflict.any():
                err = err or DuplicateSampleError()
                nbad += int(conflict.sum())
            keep &= ~equal
        min_valid = self._db.min_valid_time()
        if min_valid is not None:
            oob = ts < min_valid
            if oob.any():
                from omtsdb.errors import OutOfBoundsError

                err = err or OutOfBoundsError()
                nbad += int((oob & keep).sum())
                keep &= ~oob
        if not keep.all():
            refs, ts, vs = refs[keep], ts[keep], vs[keep]
            st = None if st is None else st[keep]
        return refs, ts, vs, st, err, nbad

    def commit(self, sync: bool = True) -> None:
        """Validate and apply the staged samples after logging them to the WAL. With
        ``sync=False`` the WAL write is not fsynced before returning (scrapes, like
        Prometheus's, which never fsyncs per append): a crash of the process loses nothing,
        a crash of the machine can lose the last unsynced commits."""
        st = self._staged
        self._staged = _Staged()
        if not st.refs:
            return
        refs = np.concatenate(st.refs) if len(st.refs) > 1 else st.refs[0]
        ts = np.concatenate(st.ts) if len(st.ts) > 1 else st.ts[0]
        vs = np.concatenate(st.vs) if len(st.vs) > 1 else st.vs[0]
        starts = st.starts()
        head = self._db.head
        with head.lock:
            # Re-validate under the lock: another commit may have advanced these series.
            refs, ts, vs, starts, err, nbad = self._validate(refs, ts, vs, starts)
            if err is not None:
                self.report.note(err, nbad)
            if refs.size == 0:
                return
            uniq = np.unique(refs)
            new = head.unlogged(uniq)
            records: list[SeriesRecord | SamplesRecord] = []
            if new.size:
                labels = [head.labels_of(int(s)) for s in new]
                records.append(
                    SeriesRecord(new.astype(np.uint64), [lb for lb in labels if lb is not None])
                )
            records.append(SamplesRecord(refs.astype(np.uint64), ts, vs, starts))
            self._db.log_to_wal(records, sync)
            head.mark_logged(new)
            head.apply(refs, ts, vs, starts)
            self.report.appended += int(refs.size)
            for listener in self._db.commit_listeners:
                listener(refs, ts, vs)  # in commit order (remote write queues)
        self._db.after_commit()

    def rollback(self) -> None:
        self._staged = _Staged()
