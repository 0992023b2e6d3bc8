"""The head: recent samples of every series in memory.

Layout, chosen for batched appends and a small footprint per series:

- an *open chunk* per series: rows of two 2-D numpy arrays (``int64`` timestamps, ``float64``
  values) of ``chunk_capacity`` columns, filled left to right. A batch is written with one
  fancy-indexed assignment for all series at once (no numpy call per sample or per series).
- *closed chunks*: when a row is full it is compressed with the chunk codec into an immutable
  ``bytes`` object kept in a per-series list, so the head holds hours of data in a few bytes per
  sample.
- start timestamps (optional, per sample) only for the series that have any: open-chunk rows
  in :class:`~omtsdb.tsdb.head_starts.OpenStarts`, and a flagged stream in closed chunks.

All mutation happens under one lock; readers copy what they need under the lock and decode
outside it. The head knows nothing of the WAL: the appender logs before it applies.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterator, Sequence

import numpy as np

from omtsdb.model.labels import Labels
from omtsdb.model.matchers import Matcher
from omtsdb.model.samples import F64, I64
from omtsdb.storage.interface import SeriesData
from omtsdb.tsdb import chunks
from omtsdb.tsdb.head_chunks import ClosedChunks
from omtsdb.tsdb.head_starts import OpenStarts
from omtsdb.tsdb.index import IDS, MemPostings

I64_MIN = np.iinfo(np.int64).min
I64_MAX = np.iinfo(np.int64).max
I32_MAX = np.iinfo(np.int32).max
LONG_CHUNK = 960  # closed chunks are merged up to about this many samples


class Head:
    def __init__(self, *, chunk_capacity: int = 120, initial_series: int = 1024) -> None:
        if chunk_capacity < 2:
            raise ValueError("chunk_capacity must be >= 2")
        self.capacity = chunk_capacity
        self.lock = threading.RLock()
        self.postings = MemPostings()
        self._labels: list[Labels | None] = []
        self._by_labels: dict[Labels, int] = {}
        self._closed = ClosedChunks()
        n = max(initial_series, 16)
        # Open chunk timestamps as int32 offsets from ``_tbase`` (the chunk's first sample).
        self._bts = np.empty((n, chunk_capacity), np.int32)
        self._tbase = np.zeros(n, np.int64)
        self._bvs = np.empty((n, chunk_capacity), np.float64)
        self._fill = np.zeros(n, np.int32)
        self._first = np.full(n, I64_MAX, np.int64)  # oldest sample held per series
        self._last = np.full(n, I64_MIN, np.int64)  # newest sample per series
        self._last_bits = np.zeros(n, np.uint64)  # its value bits (duplicate detection)
        self._logged = np.zeros(n, np.bool_)  # series record is in the WAL
        self._starts = OpenStarts(chunk_capacity, n)
        self.num_samples = 0
        self.num_series = 0
        self.removed_series_total = 0  # grows when truncate drops series (ids are not reused)
        self.mint = I64_MAX
        self.maxt = I64_MIN

    # -- series ---------------------------------------------------------------------------
    def lookup(self, labels: Labels) -> int | None:
        return self._by_labels.get(labels)

    def get_or_create(self, labels: Labels) -> tuple[int, bool]:
        """The id of ``labels``, creating the series if needed. Caller validates labels."""
        sid = self._by_labels.get(labels)
        if sid is not None:
            return sid, False
        with self.lock:
            sid = self._by_labels.get(labels)
            if sid is not None:
                return sid, False
            return self._create(labels, len(self._labels)), True

    def create_with_id(self, sid: int, labels: Labels) -> None:
        """Replay: recreate a series under the id it had (ids must ascend)."""
        with self.lock:
            if labels in self._by_labels:
                return
            while len(self._labels) < sid:
                self._labels.append(None)
                self._closed.add_series()
            self._create(labels, sid)
            self._logged[sid] = True

    def _create(self, labels: Labels, sid: int) -> int:
        flat = tuple(sys.intern(s) for s in labels.flat)
        if any(a is not b for a, b in zip(flat, labels.flat, strict=True)):
            labels = Labels.from_flat(flat)
        # else keep the caller's object: callers that intern (scrape loops) then hit the
        # series map by identity, which skips Labels.__eq__
        self._ensure_rows(sid + 1)
        if sid == len(self._labels):
            self._labels.append(labels)
            self._closed.add_series()
        else:
            self._labels[sid] = labels
            self._closed.reset(sid)
        self._by_labels[labels] = sid
        self._fill[sid] = 0
        self._first[sid] = I64_MAX
        self._last[sid] = I64_MIN
        self._logged[sid] = False
        self.postings.add(sid, labels)
        self.num_series += 1
        return sid

    def _ensure_rows(self, n: int) -> None:
        cap = self._fill.shape[0]
        if n <= cap:
            return
        new = max(n, cap * 2)
        # np.empty leaves untouched pages unallocated, so doubling costs address space only.
        bts = np.empty((new, self.capacity), np.int32)
        bvs = np.empty((new, self.capacity), np.float64)
        bts[:cap] = self._bts
        bvs[:cap] = self._bvs
        self._bts, self._bvs = bts, bvs
        self._fill = _grow(self._fill, new, 0)
        self._tbase = _grow(self._tbase, new, 0)
        self._first = _grow(self._first, new, I64_MAX)
        self._last = _grow(self._last, new, I64_MIN)
        self._last_bits = _grow(self._last_bits, new, 0)
        self._logged = _grow(self._logged, new, False)
        self._starts.grow(new)

    def labels_of(self, sid: int) -> Labels | None:
        return self._labels[sid] if sid < len(self._labels) else None

    def last_of(self, sids: I64) -> tuple[I64, np.ndarray[tuple[int], np.dtype[np.uint64]]]:
        """Newest committed timestamp and value bits of each series (I64_MIN when empty)."""
        return self._last[sids], self._last_bits[sids]

    def unlogged(self, sids: I64) -> I64:
        """Those of ``sids`` (unique) whose series record is not yet in the WAL."""
        return sids[~self._logged[sids]]

    def mark_logged(self, sids: I64) -> None:
        self._logged[sids] = True

    # -- samples ----------------------------------------------------------------------------
    def apply(self, refs: I64, ts: I64, vs: F64, st: I64 | None = None) -> None:
        """Add committed samples (with their start timestamps, 0 = unknown, if any). Caller
        holds ``lock`` and guarantees: sorted by (ref, ts), each ts greater than the series'
        newest sample, no duplicate (ref, ts)."""
        n = refs.shape[0]
        if n == 0:
            return
        bounds = np.flatnonzero(np.diff(refs)) + 1
        starts = np.concatenate(([0], bounds))
        ends = np.concatenate((bounds, [n]))
        uniq = refs[starts]
        counts = ends - starts
        if st is not None:
            known = np.add.reduceat((st != 0).astype(np.int64), starts) > 0
            self._starts.assign(uniq[known])
        # the head's time range, from every sample (those taking the long path included)
        self.mint = min(self.mint, int(ts.min()))
        self.maxt = max(self.maxt, int(ts.max()))
        fill = self._fill[uniq].astype(np.int64)
        base = np.where(fill == 0, ts[starts], self._tbase[uniq])
        span = ts[ends - 1] - base
        over = (fill + counts > self.capacity) | (span > I32_MAX)
        if over.any():
            for i in np.flatnonzero(over):
                sl = slice(int(starts[i]), int(ends[i]))
                self._apply_long(int(uniq[i]), ts[sl], vs[sl], None if st is None else st[sl])
            keep = np.repeat(~over, counts)
            refs, ts, vs = refs[keep], ts[keep], vs[keep]
            st = None if st is None else st[keep]
            uniq, counts, fill, base = uniq[~over], counts[~over], fill[~over], base[~over]
            starts = np.concatenate(([0], np.cumsum(counts)[:-1])) if counts.size else starts
        if refs.shape[0]:
            rank = np.arange(refs.shape[0]) - np.repeat(starts, counts)
            cols = np.repeat(fill, counts) + rank
            self._tbase[uniq] = base
            self._bts[refs, cols] = (ts - np.repeat(base, counts)).astype(np.int32)
            self._bvs[refs, cols] = vs
            if self._starts.used:
                self._starts.write(refs, cols, st)
            self._fill[uniq] += counts.astype(np.int32)
            self._first[uniq] = np.minimum(self._first[uniq], ts[starts])
            lastidx = starts + counts - 1
            self._last[uniq] = ts[lastidx]
            self._last_bits[uniq] = vs[lastidx].view(np.uint64)
        self.num_samples += n

    def _open_ts(self, sid: int) -> I64:
        f = int(self._fill[sid])
        out: I64 = self._bts[sid, :f].astype(np.int64) + self._tbase[sid]
        return out

    def _apply_long(self, sid: int, ts: I64, vs: F64, st: I64 | None) -> None:
        """Append more samples than the open chunk can take (or spanning more than the int32
        offsets reach): cut full chunks as we go."""
        f = int(self._fill[sid])
        all_ts = np.concatenate((self._open_ts(sid), ts))
        all_vs = np.concatenate((self._bvs[sid, :f], vs))
        open_st = self._starts.of(sid, f)
        all_st = None
        if open_st is not None:
            all_st = np.concatenate((open_st, st if st is not None else np.zeros_like(ts)))
        cap = self.capacity
        n = all_ts.shape[0]
        ncut = (n - 1) // cap  # keep 1..cap samples open
        # Long runs (imports, backfills) are cut into long chunks directly.
        per = max(1, LONG_CHUNK // cap) * cap
        a = 0
        while a + cap < n:
            b = min(a + per, ((n - 1) // cap) * cap)
            cst = None if all_st is None else all_st[a:b]
            self._closed.add(sid, chunks.encode_fast(all_ts[a:b], all_vs[a:b], cst))
            self._closed.merge_tail(sid)
            a = b
        del ncut
        if all_ts[-1] - all_ts[a] > I32_MAX:  # sparse samples: close all but the newest
            cst = None if all_st is None else all_st[a:-1]
            self._closed.add(sid, chunks.encode_fast(all_ts[a:-1], all_vs[a:-1], cst))
            a = n - 1
        rest = n - a
        self._tbase[sid] = all_ts[a]
        self._bts[sid, :rest] = (all_ts[a:] - all_ts[a]).astype(np.int32)
        self._bvs[sid, :rest] = all_vs[a:]
        if all_st is not None:
            self._starts.set(sid, all_st[a:])
        self._fill[sid] = rest
        self._first[sid] = min(int(self._first[sid]), int(all_ts[0]))
        self._last[sid] = int(all_ts[-1])
        self._last_bits[sid] = all_vs[-1:].view(np.uint64)[0]

    # -- reading ----------------------------------------------------------------------------
    def matching(self, matchers: Sequence[Matcher], mint: int, maxt: int) -> IDS:
        """Ids of series matching all matchers with samples overlapping [mint, maxt]."""
        ids = self.postings.postings_for_matchers(matchers)
        if ids.size == 0:
            return ids
        with self.lock:
            ok = (self._first[ids] <= maxt) & (self._last[ids] >= mint)
        return ids[ok]

    def series_samples(self, sid: int, mint: int, maxt: int) -> SeriesData | None:
        """Samples of one series with mint <= t <= maxt (None when there are none)."""
        with self.lock:
            lb = self._labels[sid]
            if lb is None:
                return None
            closed = self._closed.overlapping(sid, mint, maxt)
            f = int(self._fill[sid])
            bts = self._open_ts(sid)
            bvs = self._bvs[sid, :f].copy()
            bst = self._starts.of(sid, f) if self._starts.used else None
        parts_t: list[I64] = []
        parts_v: list[F64] = []
        parts_s: list[I64 | None] = []
        for c in closed:
            t, v, s = chunks.decode_st(c)
            parts_t.append(t)
            parts_v.append(v)
            parts_s.append(s)
        parts_t.append(bts)
        parts_v.append(bvs)
        parts_s.append(bst)
        ts = np.concatenate(parts_t) if len(parts_t) > 1 else parts_t[0]
        vs = np.concatenate(parts_v) if len(parts_v) > 1 else parts_v[0]
        lo = int(np.searchsorted(ts, mint, "left"))
        hi = int(np.searchsorted(ts, maxt, "right"))
        if hi <= lo:
            return None
        st = None
        if any(s is not None for s in parts_s):
            full = np.concatenate(
                [
                    s if s is not None else np.zeros_like(t)
                    for s, t in zip(parts_s, parts_t, strict=True)
                ]
            )
            st = full[lo:hi] if full[lo:hi].any() else None
        return SeriesData(lb, ts[lo:hi], vs[lo:hi], st)

    def iter_series(self, mint: int, maxt: int) -> Iterator[SeriesData]:
        """Every series with samples in [mint, maxt], sorted by labels (for blocks and dump)."""
        with self.lock:
            live = [(lb, sid) for sid, lb in enumerate(self._labels) if lb is not None]
        live.sort(key=lambda p: p[0].sort_key())
        for _, sid in live:
            s = self.series_samples(sid, mint, maxt)
            if s is not None:
                yield s

    # -- truncation -------------------------------------------------------------------------
    def truncate(self, mint: int) -> int:
        """Drop samples older than ``mint`` (already persisted elsewhere) and series left
        empty. Returns the number of series removed."""
        removed = 0
        with self.lock:
            for sid, lb in enumerate(self._labels):
                if lb is None:
                    continue
                closed = self._closed
                closed.drop_before(sid, mint)
                has_chunks = closed.count(sid) > 0
                f = int(self._fill[sid])
                if f and self._tbase[sid] + int(self._bts[sid, f - 1]) < mint and not has_chunks:
                    self._fill[sid] = 0
                    f = 0
                if not has_chunks and f == 0:
                    self._labels[sid] = None
                    del self._by_labels[lb]
                    self._starts.release(sid)
                    self._first[sid] = I64_MAX
                    self._last[sid] = I64_MIN
                    removed += 1
                    continue
                fm = closed.first_mint(sid)
                self._first[sid] = fm if fm is not None else int(self._tbase[sid])
            if removed:
                self.num_series -= removed
                self.removed_series_total += removed
                self.postings.rebuild(
                    (sid, lb) for sid, lb in enumerate(self._labels) if lb is not None
                )
            live = self._first[: len(self._labels)]
            self.mint = int(live.min()) if live.size and live.min() != I64_MAX else I64_MAX
        return removed

    def series_count(self) -> int:
        return self.num_series

    def chunk_count(self) -> int:
        """Chunks held: closed chunks plus every non-empty open chunk (one pass over series)."""
        with self.lock:
            n = len(self._labels)
            open_chunks = int(np.count_nonzero(self._fill[:n]))
            closed = sum(self._closed.count(sid) for sid in range(n) if self._closed.blobs[sid])
        return open_chunks + closed

    def all_labels(self) -> list[tuple[int, Labels]]:
        with self.lock:
            return [(sid, lb) for sid, lb in enumerate(self._labels) if lb is not None]


def _grow(a: np.ndarray, n: int, fill: object) -> np.ndarray:
    out = np.full(n, fill, dtype=a.dtype)
    out[: a.shape[0]] = a
    return out
