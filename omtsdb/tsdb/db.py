"""The database: head + WAL + blocks behind the storage Protocols.

``DB.open(path)`` replays the WAL into the head and opens the blocks; ``db.appender()`` writes,
``db.querier(mint, maxt)`` reads head and blocks merged. With ``path=None`` the DB lives in
memory only (no WAL, no blocks): the PromQL test runner and unit tests use that.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from omtsdb.model.matchers import Matcher
from omtsdb.storage.interface import Querier, SeriesData
from omtsdb.tsdb.appender import HeadAppender
from omtsdb.tsdb.head import I64_MAX, I64_MIN, Head
from omtsdb.tsdb.querier import HeadQuerier, MergeQuerier
from omtsdb.tsdb.wal import WAL, SamplesRecord, SeriesRecord

log = logging.getLogger(__name__)

HOUR_MS = 3_600_000
DAY_MS = 24 * HOUR_MS


@dataclass(frozen=True, slots=True)
class DBOptions:
    wal: bool = True
    fsync: bool = True
    wal_segment_size: int = 128 * 2**20
    chunk_capacity: int = 120
    block_range_ms: int = 2 * HOUR_MS
    retention_ms: int = 15 * DAY_MS
    retention_bytes: int = 0
    require_metric_name: bool = True


@dataclass(slots=True)
class ReplayStats:
    series: int = 0
    samples: int = 0
    dropped: int = 0


class DB:
    def __init__(self, path: Path | None, opts: DBOptions) -> None:
        self.path = path
        self.opts = opts
        self.head = Head(chunk_capacity=opts.chunk_capacity)
        self.require_metric_name = opts.require_metric_name
        self.wal: WAL | None = None
        self.replay_stats = ReplayStats()
        self._head_floor: int | None = None  # head samples below this live in blocks
        self._closed = False
        self._cut_lock = threading.Lock()

    # -- lifecycle --------------------------------------------------------------------------
    @classmethod
    def open(cls, path: str | Path | None, opts: DBOptions | None = None) -> DB:
        opts = opts or DBOptions()
        p = Path(path) if path is not None else None
        db = cls(p, opts)
        if p is not None:
            p.mkdir(parents=True, exist_ok=True)
            if opts.wal:
                db.wal = WAL.open(p / "wal", segment_size=opts.wal_segment_size, fsync=opts.fsync)
                db._replay()
        return db

    def _replay(self) -> None:
        assert self.wal is not None
        head = self.head
        st = self.replay_stats
        for rec in self.wal.replay():
            if isinstance(rec, SeriesRecord):
                for ref, lb in zip(rec.refs.tolist(), rec.labels, strict=True):
                    head.create_with_id(int(ref), lb)
                st.series += len(rec.labels)
            elif isinstance(rec, SamplesRecord):
                refs = rec.refs.astype(np.int64)
                known = refs < len(head._labels)
                if not known.all():
                    st.dropped += int((~known).sum())
                refs, ts, vs = refs[known], rec.ts[known], rec.vs[known]
                with head.lock:
                    ok = np.array(
                        [head.labels_of(int(r)) is not None for r in np.unique(refs)], bool
                    )
                    if not ok.all():
                        live = np.unique(refs)[ok]
                        m = np.isin(refs, live)
                        st.dropped += int((~m).sum())
                        refs, ts, vs = refs[m], ts[m], vs[m]
                    order = np.lexsort((ts, refs))
                    refs, ts, vs = refs[order], ts[order], vs[order]
                    last, _ = head.last_of(refs)
                    fresh = ts > last
                    if refs.size > 1:
                        fresh[1:] &= (refs[1:] != refs[:-1]) | (ts[1:] != ts[:-1])
                    if not fresh.all():
                        st.dropped += int((~fresh).sum())
                        refs, ts, vs = refs[fresh], ts[fresh], vs[fresh]
                    head.apply(refs, ts, vs)
                st.samples += int(refs.size)
        if st.series or st.samples:
            log.info(
                "WAL replay: %d series, %d samples, %d dropped", st.series, st.samples, st.dropped
            )

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self.wal is not None:
            self.wal.close()

    def __enter__(self) -> DB:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- writing ----------------------------------------------------------------------------
    def appender(self) -> HeadAppender:
        return HeadAppender(self)

    def log_to_wal(self, records: Sequence[SeriesRecord | SamplesRecord]) -> None:
        if self.wal is not None:
            self.wal.log(records)

    def min_valid_time(self) -> int | None:
        """Samples older than this are out of bounds (their range is in immutable blocks)."""
        return self._head_floor

    def after_commit(self) -> None:
        """Hook run after each commit (block cutting is triggered from here)."""

    # -- reading ----------------------------------------------------------------------------
    def querier(self, mint: int, maxt: int) -> Querier:
        return MergeQuerier([HeadQuerier(self.head, mint, maxt, self._head_floor)])

    def iter_series(
        self, mint: int = I64_MIN, maxt: int = I64_MAX, matchers: Sequence[Matcher] = ()
    ) -> Iterator[SeriesData]:
        """Every series (optionally matching ``matchers``) with its samples in [mint, maxt],
        merged across head and blocks, sorted by labels."""
        if matchers:
            yield from self.querier(mint, maxt).select(matchers, mint, maxt)
            return
        floor = self._head_floor if self._head_floor is not None else mint
        yield from self.head.iter_series(max(mint, floor), maxt)

    def stats(self) -> dict[str, int]:
        head = self.head
        return {
            "head_series": head.series_count(),
            "head_samples": head.num_samples,
            "head_min_time": head.mint if head.mint != I64_MAX else 0,
            "head_max_time": head.maxt if head.maxt != I64_MIN else 0,
        }
