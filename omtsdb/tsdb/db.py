"""The database: head + WAL + blocks behind the storage Protocols.

``DB.open(path)`` replays the WAL into the head and opens the blocks; ``db.appender()`` writes,
``db.querier(mint, maxt)`` reads head and blocks merged. With ``path=None`` the DB lives in
memory only (no WAL, no blocks): the PromQL test runner and unit tests use that.
"""

from __future__ import annotations

import logging
import os
import shutil
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from omtsdb.errors import CorruptionError
from omtsdb.model.labels import Labels
from omtsdb.model.matchers import Matcher
from omtsdb.model.samples import F64, I64
from omtsdb.storage.interface import Querier, SeriesData
from omtsdb.tsdb.appender import HeadAppender
from omtsdb.tsdb.block.compact import BaselineCache, compact, merged_series, plan, retention_victims
from omtsdb.tsdb.block.format import is_ulid
from omtsdb.tsdb.block.reader import Block
from omtsdb.tsdb.block.writer import fsync_dir, write_block
from omtsdb.tsdb.head import I64_MAX, I64_MIN, Head
from omtsdb.tsdb.querier import BlockQuerier, HeadQuerier, MergeQuerier
from omtsdb.tsdb.wal import WAL, SamplesRecord, SeriesRecord

log = logging.getLogger(__name__)

HOUR_MS = 3_600_000
DAY_MS = 24 * HOUR_MS


@dataclass(frozen=True, slots=True)
class DBOptions:
    wal: bool = True
    fsync: bool = True
    wal_segment_size: int = 128 * 2**20
    chunk_capacity: int = 64
    block_range_ms: int = 2 * HOUR_MS
    retention_ms: int = 15 * DAY_MS
    retention_bytes: int = 0
    require_metric_name: bool = True
    blocks: bool = True  # cut the head into blocks, compact, apply retention
    baseline_min_range_ms: int = 8 * HOUR_MS  # learn baselines for blocks at least this long


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
        self._compact_lock = threading.RLock()
        self.blocks: list[Block] = []
        self._blocks_lock = threading.Lock()
        self._bg: threading.Thread | None = None
        self._cut_wanted = False
        self._baselines = BaselineCache(self._read_from_blocks)
        # called under the head lock after each commit with its (refs, ts, vs); must be cheap
        self.commit_listeners: list[Callable[[I64, I64, F64], None]] = []

    # -- lifecycle --------------------------------------------------------------------------
    @classmethod
    def open(cls, path: str | Path | None, opts: DBOptions | None = None) -> DB:
        opts = opts or DBOptions()
        p = Path(path) if path is not None else None
        db = cls(p, opts)
        if p is not None:
            p.mkdir(parents=True, exist_ok=True)
            db._load_blocks()
            if opts.wal:
                db.wal = WAL.open(p / "wal", segment_size=opts.wal_segment_size, fsync=opts.fsync)
                db._replay()
            if db._head_floor is not None:
                db.head.truncate(db._head_floor)
            if opts.blocks:
                db._apply_retention()
            db.after_commit()
        return db

    def _load_blocks(self) -> None:
        assert self.path is not None
        found: list[Block] = []
        for d in sorted(self.path.iterdir()):
            if d.is_dir() and d.name.endswith(".tmp"):
                log.info("removing incomplete block directory %s", d.name)
                shutil.rmtree(d, ignore_errors=True)
            elif d.is_dir() and is_ulid(d.name) and (d / "meta.json").exists():
                try:
                    found.append(Block(d))
                except CorruptionError as e:
                    log.error("skipping corrupt block %s: %s", d.name, e)
        # a crash after a compaction wrote its block but before it deleted the sources
        replaced = {p for b in found for p in b.meta.parents}
        for b in [b for b in found if b.meta.ulid in replaced]:
            log.info("removing block %s, already compacted", b.meta.ulid)
            self._delete_block(b)
        found = [b for b in found if b.meta.ulid not in replaced]
        self._set_blocks(found)

    def _set_blocks(self, blocks: list[Block]) -> None:
        blocks = sorted(blocks, key=lambda b: (b.meta.min_time, b.meta.ulid))
        head_blocks = [b.meta.max_time for b in blocks if b.meta.origin == "head"]
        with self._blocks_lock:
            self.blocks = blocks
            if head_blocks:
                self._head_floor = max(max(head_blocks), self._head_floor or I64_MIN)

    def _delete_block(self, b: Block) -> None:
        """Atomic delete: rename to ``*.tmp`` (removed at next open if we die), then remove."""
        b.forget_cached()
        tmp = b.path.with_name(b.path.name + ".tmp")
        try:
            os.rename(b.path, tmp)
            if self.opts.fsync:
                fsync_dir(b.path.parent)
        except FileNotFoundError:
            return
        shutil.rmtree(tmp, ignore_errors=True)

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
                refs, ts, vs, sts = refs[known], rec.ts[known], rec.vs[known], rec.st
                sts = None if sts is None else sts[known]
                with head.lock:
                    ok = np.array(
                        [head.labels_of(int(r)) is not None for r in np.unique(refs)], bool
                    )
                    if not ok.all():
                        live = np.unique(refs)[ok]
                        m = np.isin(refs, live)
                        st.dropped += int((~m).sum())
                        refs, ts, vs = refs[m], ts[m], vs[m]
                        sts = None if sts is None else sts[m]
                    order = np.lexsort((ts, refs))
                    refs, ts, vs = refs[order], ts[order], vs[order]
                    sts = None if sts is None else sts[order]
                    last, _ = head.last_of(refs)
                    fresh = ts > last
                    if refs.size > 1:
                        fresh[1:] &= (refs[1:] != refs[:-1]) | (ts[1:] != ts[:-1])
                    if not fresh.all():
                        st.dropped += int((~fresh).sum())
                        refs, ts, vs = refs[fresh], ts[fresh], vs[fresh]
                        sts = None if sts is None else sts[fresh]
                    head.apply(refs, ts, vs, sts)
                st.samples += int(refs.size)
        if st.series or st.samples:
            log.info(
                "WAL replay: %d series, %d samples, %d dropped", st.series, st.samples, st.dropped
            )

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        with self._cut_lock:
            bg = self._bg
        if bg is not None:
            bg.join()
        if self.wal is not None:
            self.wal.close()

    def wait_for_compaction(self) -> None:
        """Block until the background cutter has handled every request made so far."""
        while True:
            with self._cut_lock:
                bg = self._bg
            if bg is None:
                return
            bg.join()

    def __enter__(self) -> DB:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- writing ----------------------------------------------------------------------------
    def appender(self) -> HeadAppender:
        return HeadAppender(self)

    def log_to_wal(
        self, records: Sequence[SeriesRecord | SamplesRecord], sync: bool = True
    ) -> None:
        if self.wal is not None:
            self.wal.log(records, sync)

    def min_valid_time(self) -> int | None:
        """Samples older than this are out of bounds: their range is in immutable blocks, or
        (on disk, as Prometheus) more than half a block range behind the newest sample."""
        floor = self._head_floor
        if self.path is not None and self.opts.blocks and self.head.maxt != I64_MIN:
            recent = self.head.maxt - self.opts.block_range_ms // 2
            floor = recent if floor is None else max(floor, recent)
        return floor

    def after_commit(self) -> None:
        """Hook run after each commit: starts cutting a block when the head spans 1.5 ranges."""
        if self._head_span_due() and not self._closed:
            with self._cut_lock:
                self._cut_wanted = True
                if self._bg is None:
                    self._bg = threading.Thread(
                        target=self._background, name="omtsdb-compact", daemon=True
                    )
                    self._bg.start()

    def _head_span_due(self) -> bool:
        if self.path is None or not self.opts.blocks:
            return False
        h = self.head
        if h.maxt == I64_MIN or h.mint == I64_MAX:
            return False
        mint = max(h.mint, self._head_floor) if self._head_floor is not None else h.mint
        return h.maxt - mint > self.opts.block_range_ms * 3 // 2

    def _background(self) -> None:
        # Runs until no commit asked for a cut since the last pass, so a request made while
        # a pass was finishing is never lost.
        while True:
            with self._cut_lock:
                if not self._cut_wanted or self._closed:
                    self._bg = None
                    return
                self._cut_wanted = False
            try:
                self.compact_head()
                self.compact()
            except Exception:
                log.exception("compaction failed; will retry after the next commit")

    # -- blocks -----------------------------------------------------------------------------
    def compact_head(self) -> int:
        """Cut the oldest block-range windows of the head into blocks while the head spans more
        than 1.5 ranges; then truncate the head and checkpoint the WAL. Returns blocks cut."""
        assert self.path is not None
        r = self.opts.block_range_ms
        cut = 0
        end = None
        while self._head_span_due():
            h = self.head
            mint = max(h.mint, self._head_floor) if self._head_floor is not None else h.mint
            a = mint // r * r
            end = a + r
            meta = write_block(
                self.path,
                ((s.labels, s.ts, s.vs, s.st) for s in h.iter_series(a, end - 1)),
                min_time=a,
                max_time=end,
                origin="head",
                fsync=self.opts.fsync,
            )
            new = [Block(self.path / meta.ulid)] if meta is not None else []
            self._set_blocks(self.blocks + new)
            with self._blocks_lock:
                self._head_floor = max(end, self._head_floor or I64_MIN)
            cut += 1
        if end is not None:
            self._truncate_head(end)
        return cut

    def _truncate_head(self, mint: int) -> None:
        removed = self.head.truncate(mint)
        log.info("head truncated below %d (%d series removed)", mint, removed)
        if self.wal is not None:
            last = self.wal.cut_segment()
            head = self.head

            def alive(refs: np.ndarray) -> np.ndarray:
                with head.lock:
                    return np.array([head.labels_of(int(r)) is not None for r in refs], bool)

            self.wal.checkpoint(upto_segment=last, keep_series=alive, mint=mint)

    def compact(self) -> int:
        """Merge overlapping blocks and complete windows into larger blocks, then apply
        retention. Returns the number of compactions done."""
        assert self.path is not None
        done = 0
        with self._compact_lock:
            while True:
                group = plan(self.blocks)
                if not group:
                    break
                mint = min(b.meta.min_time for b in group)
                maxt = max(b.meta.max_time for b in group)
                bfn = (
                    self._baselines.for_block(mint)
                    if maxt - mint >= self.opts.baseline_min_range_ms
                    else None
                )
                ulid = compact(self.path, group, baselines=bfn, fsync=self.opts.fsync)
                new = [Block(self.path / ulid)] if ulid is not None else []
                self._set_blocks([b for b in self.blocks if b not in group] + new)
                for b in group:
                    self._delete_block(b)
                done += 1
            self._apply_retention()
        return done

    def _apply_retention(self) -> None:
        wal_bytes = self.wal.size_bytes() if self.wal is not None else 0
        victims = retention_victims(
            self.blocks, self.opts.retention_ms, self.opts.retention_bytes, wal_bytes
        )
        if victims:
            self._set_blocks([b for b in self.blocks if b not in victims])
            for b in victims:
                log.info("retention: deleting block %s", b.meta.ulid)
                self._delete_block(b)

    def reload_blocks(self) -> None:
        """Pick up blocks written by others (``omtsdb import``) into this directory."""
        if self.path is None:
            return
        known = {b.meta.ulid for b in self.blocks}
        fresh = [
            Block(d)
            for d in sorted(self.path.iterdir())
            if d.is_dir() and is_ulid(d.name) and d.name not in known and (d / "meta.json").exists()
        ]
        if fresh:
            self._set_blocks(self.blocks + fresh)

    def _read_from_blocks(self, lb: Labels, mint: int, maxt: int) -> tuple[I64, F64] | None:
        parts = []
        for b in self.blocks:
            if b.meta.min_time <= maxt and b.meta.max_time > mint:
                i = b.find(lb)
                if i is not None:
                    got = b.series_samples(i, mint, maxt)
                    if got is not None:
                        parts.append(SeriesData(lb, got[0], got[1]))
        if not parts:
            return None
        from omtsdb.tsdb.querier import merge_series

        m = merge_series(parts)
        return m.ts, m.vs

    # -- reading ----------------------------------------------------------------------------
    def querier(self, mint: int, maxt: int) -> Querier:
        qs: list[Querier] = [
            BlockQuerier(b)
            for b in self.blocks
            if b.meta.min_time <= maxt and b.meta.max_time > mint
        ]
        if self._head_floor is None or maxt >= self._head_floor:
            qs.append(HeadQuerier(self.head, mint, maxt, self._head_floor))
        return MergeQuerier(qs)

    def iter_series(
        self, mint: int = I64_MIN, maxt: int = I64_MAX, matchers: Sequence[Matcher] = ()
    ) -> Iterator[SeriesData]:
        """Every series (optionally matching ``matchers``) with its samples in [mint, maxt],
        merged across head and blocks, sorted by labels."""
        if matchers:
            with self.querier(mint, maxt) as q:
                found = q.select(matchers, mint, maxt)
            yield from found
            return
        floor = self._head_floor if self._head_floor is not None else mint
        blocks = [b for b in self.blocks if b.meta.min_time <= maxt and b.meta.max_time > mint]
        head = self.head.iter_series(max(mint, floor), maxt)
        if not blocks:
            yield from head
            return
        sources = [b.iter_series(mint, maxt) for b in blocks] + [head]
        for lb, ts, vs, st in merged_series(sources):
            yield SeriesData(lb, ts, vs, st)

    def stats(self) -> dict[str, int]:
        head = self.head
        return {
            "head_series": head.series_count(),
            "head_samples": head.num_samples,
            "head_min_time": head.mint if head.mint != I64_MAX else 0,
            "head_max_time": head.maxt if head.maxt != I64_MIN else 0,
            "blocks": len(self.blocks),
            "block_samples": sum(b.meta.num_samples for b in self.blocks),
            "block_series": sum(b.meta.num_series for b in self.blocks),
        }
