"""Reading a block: postings lookups on the index, partial chunk decoding for a time range.

The chunks file is memory-mapped; ``select`` decodes only the chunks of matching series that
overlap the asked range.
"""

from __future__ import annotations

import bisect
import contextlib
import itertools
import mmap
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import cast

import numpy as np

from omtsdb.errors import CorruptionError
from omtsdb.model.labels import Labels
from omtsdb.model.matchers import Matcher, MatchType
from omtsdb.model.samples import F64, I64
from omtsdb.storage.interface import SelectHints, SeriesBatch, SeriesData
from omtsdb.tsdb.block.cache import CHUNK_CACHE
from omtsdb.tsdb.block.format import CHUNK_DT, CHUNK_ST, CHUNKS_MAGIC, BlockMeta, decode_index
from omtsdb.tsdb.codec.baseline import Baseline, decode_baseline
from omtsdb.tsdb.codec.batch import Job, decode_batch
from omtsdb.tsdb.codec.chunk import chunk_starts, decode_timestamps
from omtsdb.tsdb.index import IDS, intersect_sorted, postings_for_matchers, union_sorted

_EMPTY: IDS = np.empty(0, np.int64)
_BATCH_SAMPLES = 1 << 18  # samples decoded in one batch: its arrays stay small and reused
_Pending = tuple[int, int, int]  # (series slot, part of its timestamps, chunk row)
# timestamps by chunk, values, shared refs, chunk rows
_Plan = tuple[list[I64 | None], F64, list[int], list[int]]
Samples = tuple[I64, F64, I64 | None]  # timestamps, values, start timestamps (or None)
_U32_MAX = np.uint64(2**32 - 1)
# a chunk partly outside a select's range is cut (searchsorted, a Python step) when that spares
# copying and masking more than this many samples, else it is masked with all the others at once
_CUT_MIN = 256
_POSTINGS_MEMO = 1024  # selectors whose matching series a block remembers
# matching series, their chunk rows, each row's series, rows' mint/maxt, one chunk a series, labels
_SelectPlan = tuple[IDS, I64, I64, I64, I64, bool, tuple[Labels, ...]]


_BLOCK_KEYS = itertools.count()


class Block:
    """An immutable block on disk."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.meta = BlockMeta.read(path / "meta.json")
        try:
            raw = (path / "index").read_bytes()
        except OSError as e:
            raise CorruptionError(f"{path}: {e}") from None
        want = self.meta.files.get("index")
        if want is not None and want != len(raw):
            raise CorruptionError(f"{path}/index: size {len(raw)}, meta says {want}")
        sec = decode_index(raw)
        self._raw = raw
        so = np.frombuffer(sec["symbol_offsets"], "<u4").astype(np.int64)
        blob = bytes(sec["symbols"])
        self.symbols = [blob[a:b].decode() for a, b in itertools.pairwise(so)]
        self._ser_off = np.frombuffer(sec["series_offsets"], "<u4").astype(np.int64)
        self._ser_lab = np.frombuffer(sec["series_labels"], "<u4")
        self._ser_chunks = np.frombuffer(sec["series_chunks"], "<u4").astype(np.int64)
        self.chunk_table = np.frombuffer(sec["chunk_table"], CHUNK_DT)
        self._ser_base = np.frombuffer(sec["series_baseline"], "<i4")
        self._base_off = np.frombuffer(sec["baseline_offsets"], "<u8").astype(np.int64)
        self._base_blob = sec["baselines"]
        self._pkeys = np.frombuffer(sec["postings_keys"], "<u8")
        self._poff = np.frombuffer(sec["postings_offsets"], "<u4").astype(np.int64)
        self._post = np.frombuffer(sec["postings"], "<u4")
        self.num_series = int(self._ser_off.size - 1)
        if self._ser_chunks.size != self.num_series + 1 or self._ser_base.size != self.num_series:
            raise CorruptionError(f"{path}/index: inconsistent series tables")
        self._labels: list[Labels | None] = [None] * self.num_series
        self._postings_memo: dict[tuple[Matcher, ...], IDS] = {}
        self._plans: dict[tuple[Matcher, ...], _SelectPlan] = {}
        self._by_labels: dict[Labels, int] | None = None
        self._bases: dict[int, Baseline] = {}
        self._ts_cache: dict[int, I64] = {}
        self._ts_concat: dict[tuple[int, ...], I64] = {}  # shared timestamps, concatenated
        refs = self.chunk_table["tsref"]
        self._ts_targets = set(np.unique(refs[refs >= 0]).tolist())  # rows others share
        self._key = next(_BLOCK_KEYS)
        # plain Python rows and offsets: per-series lookups without numpy call overhead
        self._rows: list[tuple[int, ...]] = self.chunk_table.tolist()
        self._cmin = np.ascontiguousarray(self.chunk_table["mint"])
        self._cmax = np.ascontiguousarray(self.chunk_table["maxt"])
        self._cn = self.chunk_table["n"].astype(np.int64)
        self._ser_chunks_l: list[int] = self._ser_chunks.tolist()
        self._mm = _map(path / "chunks", self.meta.files.get("chunks"))
        self._has_st = bool((self.chunk_table["flags"] & CHUNK_ST).any())
        self._closed = False

    # -- postings ---------------------------------------------------------------------------
    def _sym(self, s: str) -> int | None:
        i = bisect.bisect_left(self.symbols, s)
        return i if i < len(self.symbols) and self.symbols[i] == s else None

    def _key_range(self, name: str) -> tuple[int, int]:
        ref = self._sym(name)
        if ref is None:
            return 0, 0
        lo = np.uint64(ref) << np.uint64(32)
        a = int(np.searchsorted(self._pkeys, lo, "left"))
        b = int(np.searchsorted(self._pkeys, lo | _U32_MAX, "right"))
        return a, b

    def _postings(self, k: int) -> IDS:
        return self._post[self._poff[k] : self._poff[k + 1]].astype(np.int64)

    def all_ids(self) -> IDS:
        return np.arange(self.num_series, dtype=np.int64)

    def values_matching(self, m: Matcher, want: bool) -> IDS:
        a, b = self._key_range(m.name)
        if a == b:
            return _EMPTY
        if (m.type is MatchType.EQ and want) or (m.type is MatchType.NEQ and not want):
            ref = self._sym(m.value)
            if ref is None:
                return _EMPTY
            key = self._pkeys[a] & ~_U32_MAX | np.uint64(ref)
            k = a + int(np.searchsorted(self._pkeys[a:b], key))
            return self._postings(k) if k < b and self._pkeys[k] == key else _EMPTY
        vrefs = (self._pkeys[a:b] & _U32_MAX).astype(np.int64)
        parts = [
            self._postings(a + i)
            for i, r in enumerate(vrefs.tolist())
            if m.matches(self.symbols[r]) == want
        ]
        return union_sorted(parts)

    def postings_for_matchers(self, matchers: Sequence[Matcher]) -> IDS:
        """Matching series, memoised: a block never changes, and dashboards ask the same
        selectors again and again."""
        key = tuple(matchers)
        got = self._postings_memo.get(key)
        if got is None:
            got = postings_for_matchers(self, matchers)
            got.flags.writeable = False
            if len(self._postings_memo) >= _POSTINGS_MEMO:
                self._postings_memo.clear()
            self._postings_memo[key] = got
        return got

    # -- series -----------------------------------------------------------------------------
    def labels_of(self, i: int) -> Labels:
        lb = self._labels[i]
        if lb is None:
            refs = self._ser_lab[self._ser_off[i] : self._ser_off[i + 1]].tolist()
            lb = self._labels[i] = Labels.from_flat(tuple(self.symbols[r] for r in refs))
        return lb

    def find(self, lb: Labels) -> int | None:
        """Index of the series with exactly these labels."""
        if self._by_labels is None:
            self._by_labels = {self.labels_of(i): i for i in range(self.num_series)}
        return self._by_labels.get(lb)

    def _baseline(self, i: int) -> Baseline | None:
        k = int(self._ser_base[i])
        if k < 0:
            return None
        b = self._bases.get(k)
        if b is None:
            mv = memoryview(self._base_blob)[self._base_off[k] : self._base_off[k + 1]]
            b = self._bases[k] = decode_baseline(mv)
        return b

    def series_samples(self, i: int, mint: int, maxt: int) -> Samples | None:
        return self._samples([i], mint, maxt)[0]

    def _starts(self, row: int, ts: I64) -> I64:
        """Start timestamps of chunk ``row`` (timestamps ``ts``); zeros when it has none. Kept
        in the chunk cache under the key ``~row`` (beside the row's timestamps and values)."""
        r = self._rows[row]
        if not r[6] & CHUNK_ST:
            return np.zeros(ts.size, np.int64)
        hit = CHUNK_CACHE.get((self._key, ~row))
        if hit is not None:
            return hit[0]
        got = chunk_starts(self._mm[r[2] : r[2] + r[3]], ts)
        if got is None:
            raise CorruptionError(f"{self.path}: chunk {row}: start timestamps missing")
        CHUNK_CACHE.put((self._key, ~row), (got, np.empty(0)))
        return got

    def _samples(self, ids: Sequence[int], mint: int, maxt: int) -> list[Samples | None]:
        """Samples in [mint, maxt] of each series: the chunks not in the cache are decoded
        together (``decode_batch``), straight into one value array per series."""
        out: list[_Plan | None] = []
        pending: list[_Pending] = []
        jobs: list[Job] = []
        todo = 0
        cache, rows, bounds = CHUNK_CACHE, self._rows, self._ser_chunks_l
        for i in ids:
            c0, c1 = bounds[i], bounds[i + 1]
            sel = [c for c in range(c0, c1) if rows[c][1] >= mint and rows[c][0] <= maxt]
            if not sel:
                out.append(None)
                continue
            key = self._key
            gots = [cache.get((key, c)) for c in sel]
            hit = gots[0]
            if len(sel) == 1 and hit is not None:  # the cached arrays themselves, no copy
                out.append(([hit[0]], hit[1], [rows[sel[0]][5]], sel))
                continue
            vs = np.empty(sum(rows[c][4] for c in sel), np.float64)
            ts_parts: list[I64 | None] = []
            out.append((ts_parts, vs, [rows[c][5] for c in sel], sel))
            base = self._baseline(i)
            at = 0
            for c, got in zip(sel, gots, strict=True):
                r = rows[c]
                end = at + r[4]
                if got is None:
                    off, ref = r[2], r[5]
                    # timestamps other chunks share are decoded once, by _shared_ts
                    known = ref if ref >= 0 else c if c in self._ts_targets else -1
                    shared = self._shared_ts(known) if known >= 0 else None
                    jobs.append((self._mm[off : off + r[3]], base, shared, vs[at:end]))
                    pending.append((len(out) - 1, len(ts_parts), c))
                    ts_parts.append(shared)
                    todo += r[4]
                    if todo >= _BATCH_SAMPLES:
                        self._run(jobs, pending, out)
                        todo = 0
                else:
                    if got[1].size != r[4]:
                        raise CorruptionError(f"{self.path}: chunk {c}: bad sample count")
                    vs[at:end] = got[1]
                    ts_parts.append(got[0])
                at = end
        self._run(jobs, pending, out)
        return [None if p is None else self._finish(p, mint, maxt) for p in out]

    def _run(self, jobs: list[Job], pending: list[_Pending], out: list[_Plan | None]) -> None:
        if not jobs:
            return
        for (k, part, c), ts, job in zip(pending, decode_batch(jobs), jobs, strict=True):
            plan = out[k]
            assert plan is not None
            plan[0][part] = ts
            CHUNK_CACHE.put((self._key, c), (ts, job[3]))
        jobs.clear()
        pending.clear()

    def _finish(self, plan: _Plan, mint: int, maxt: int) -> Samples | None:
        parts, vs, refs, sel = plan
        vs.flags.writeable = False  # the cache holds views of it
        ts_parts = [t for t in parts if t is not None]
        if len(ts_parts) != len(parts):
            raise CorruptionError(f"{self.path}: chunk without timestamps")
        if len(ts_parts) == 1:
            ts = ts_parts[0]
        elif min(refs) >= 0:  # all shared: series of one scrape get the same array
            key = tuple(refs)
            got = self._ts_concat.get(key)
            if got is None:
                got = np.concatenate(ts_parts)
                got.flags.writeable = False
                if len(self._ts_concat) >= 4096:
                    self._ts_concat.clear()
                self._ts_concat[key] = got
            ts = got
        else:
            ts = np.concatenate(ts_parts)
        st = None
        if self._has_st and any(self._rows[c][6] & CHUNK_ST for c in sel):
            st = np.concatenate([self._starts(c, t) for c, t in zip(sel, ts_parts, strict=True)])
        if ts[0] < mint or ts[-1] > maxt:
            lo = int(np.searchsorted(ts, mint, "left"))
            hi = int(np.searchsorted(ts, maxt, "right"))
            if hi <= lo:
                return None
            st = None if st is None or not st[lo:hi].any() else st[lo:hi]
            return ts[lo:hi], vs[lo:hi], st
        return ts, vs, st

    def _shared_ts(self, row: int) -> I64:
        """Timestamps of chunk ``row`` (which others share), decoded once and cached."""
        got = self._ts_cache.get(row)
        if got is None:
            if not 0 <= row < self.chunk_table.size:
                raise CorruptionError(f"{self.path}: bad shared-timestamps reference {row}")
            r = self._rows[row]
            got = decode_timestamps(self._mm[r[2] : r[2] + r[3]])
            got.flags.writeable = False
            if len(self._ts_cache) >= 65536:
                self._ts_cache.clear()
            self._ts_cache[row] = got
        return got

    def select(
        self,
        matchers: Sequence[Matcher],
        mint: int,
        maxt: int,
        hints: SelectHints | None = None,
    ) -> list[SeriesData]:
        """Series in label order (the block's order) with samples in [mint, maxt]."""
        if mint >= self.meta.max_time or maxt < self.meta.min_time:
            return []
        ids = self.postings_for_matchers(matchers).tolist()
        return [
            SeriesData(self.labels_of(i), *got)
            for i, got in zip(ids, self._samples(ids, mint, maxt), strict=True)
            if got is not None
        ]

    def _select_plan(self, matchers: Sequence[Matcher]) -> _SelectPlan | None:
        """What ``select_batch`` needs that does not depend on the time range: the matching
        series, their chunk rows (and each row's series), the rows' time bounds, whether every
        series has one chunk, the series' labels. Memoised per selector (a block never
        changes); None when no series matches."""
        key = tuple(matchers)
        got = self._plans.get(key)
        if got is None:
            ids = self.postings_for_matchers(matchers)
            if ids.size == 0:
                return None
            c0 = self._ser_chunks[ids]
            counts = self._ser_chunks[ids + 1] - c0
            direct = int(counts.min()) == 1 and int(counts.max()) == 1  # one chunk a series
            if direct:
                rows, owner = c0, np.arange(ids.size, dtype=np.int64)
            else:
                owner = np.repeat(np.arange(ids.size, dtype=np.int64), counts)
                rows = np.arange(int(counts.sum()), dtype=np.int64) + np.repeat(
                    c0 - np.concatenate(([0], np.cumsum(counts)[:-1])), counts
                )
            cmin, cmax = self._cmin[rows], self._cmax[rows]
            for a in (rows, owner, cmin, cmax):
                a.flags.writeable = False
            labels = tuple(self.labels_of(i) for i in ids.tolist())
            got = (ids, rows, owner, cmin, cmax, direct, labels)
            if len(self._plans) >= _POSTINGS_MEMO:
                self._plans.clear()
            self._plans[key] = got
        return got

    def select_batch(self, matchers: Sequence[Matcher], mint: int, maxt: int) -> SeriesBatch:
        """``select`` as one batch: the chunks of all matching series overlapping the range are
        found with array operations and their (cached) decoded samples concatenated once."""
        if mint >= self.meta.max_time or maxt < self.meta.min_time:
            return SeriesBatch.empty()
        plan = self._select_plan(matchers)
        if plan is None:
            return SeriesBatch.empty()
        ids, rows, owner, cmin, cmax, direct, all_labels = plan
        ok = (cmax >= mint) & (cmin <= maxt)
        if not ok.all():
            direct = False
            rows, owner, cmin, cmax = rows[ok], owner[ok], cmin[ok], cmax[ok]
        if rows.size == 0:
            return SeriesBatch.empty()
        # chunks reaching outside the range: cut (a Python step each) when that saves copying
        # and masking many samples, else keep them whole and mask all samples at once later
        part = (cmin < mint) | (cmax > maxt)
        masked = bool(part.any())
        rows_l = rows.tolist()
        got_l = CHUNK_CACHE.get_many(self._key, rows_l)
        if None in got_l:
            owner_l = owner.tolist()
            missing = [(r, int(ids[owner_l[k]])) for k, r in enumerate(rows_l) if got_l[k] is None]
            decoded = self._decode_rows(missing)
            got_l = [g if g is not None else decoded[r] for g, r in zip(got_l, rows_l, strict=True)]
        pairs = cast(list[tuple[I64, F64]], got_l)
        ts_parts = [p[0] for p in pairs]
        vs_parts = [p[1] for p in pairs]
        with_st = self._has_st and bool((self.chunk_table["flags"][rows] & CHUNK_ST).any())
        st_parts = (
            [self._starts(r, t) for r, t in zip(rows_l, ts_parts, strict=True)] if with_st else []
        )
        lens_a = self._cn[rows]
        if masked:
            span = np.maximum(cmax - cmin, 1)
            wanted = (np.minimum(cmax, maxt) - np.maximum(cmin, mint)) / span
            cut_at = np.flatnonzero(part & (lens_a * (1.0 - wanted) > _CUT_MIN))
            if cut_at.size:
                cuts: dict[int, list[int]] = {}
                bounds = np.array([mint, maxt + 1], np.int64)
                for k in cut_at.tolist():
                    t, v = pairs[k]
                    # chunks sharing timestamps share the decoded array: cut it once
                    cut = cuts.get(id(t))
                    if cut is None:
                        cut = cuts[id(t)] = t.searchsorted(bounds).tolist()
                    lo, hi = cut
                    ts_parts[k], vs_parts[k] = t[lo:hi], v[lo:hi]
                    if with_st:
                        st_parts[k] = st_parts[k][lo:hi]
                    lens_a[k] = hi - lo
                masked = cut_at.size < int(np.count_nonzero(part))
        ts = np.concatenate(ts_parts)
        vs = np.concatenate(vs_parts)
        if direct:  # chunk k is series k's
            per_series = lens_a.astype(np.int64)
        else:
            per_series = np.bincount(owner, weights=lens_a, minlength=ids.size).astype(np.int64)
        batch = SeriesBatch(
            list(all_labels),
            ts,
            vs,
            np.concatenate(([0], np.cumsum(per_series))),
            np.concatenate(st_parts) if with_st else None,
        )
        if masked:
            return batch.take((ts >= mint) & (ts <= maxt))
        return batch.take()

    def series_labels(self, matchers: Sequence[Matcher], mint: int, maxt: int) -> list[Labels]:
        """Labels of the matching series with a chunk overlapping [mint, maxt], in the block's
        (label) order, decoding nothing (``/api/v1/series``, label look-ups)."""
        if mint >= self.meta.max_time or maxt < self.meta.min_time:
            return []
        plan = self._select_plan(matchers)
        if plan is None:
            return []
        _, _, owner, cmin, cmax, _, labels = plan
        hit = np.unique(owner[(cmax >= mint) & (cmin <= maxt)])
        return [labels[i] for i in hit.tolist()]

    def _decode_rows(self, wanted: list[tuple[int, int]]) -> dict[int, tuple[I64, F64]]:
        """Decode chunks ``(row, series)`` together (``decode_batch``) into the chunk cache."""
        out: dict[int, tuple[I64, F64]] = {}
        jobs: list[Job] = []
        done: list[int] = []
        todo = 0

        def flush() -> None:
            for c, ts, job in zip(done, decode_batch(jobs), jobs, strict=True):
                vs = job[3]
                vs.flags.writeable = False
                out[c] = (ts, vs)
                CHUNK_CACHE.put((self._key, c), out[c])
            jobs.clear()
            done.clear()

        for c, series in wanted:
            r = self._rows[c]
            ref = r[5]
            known = ref if ref >= 0 else c if c in self._ts_targets else -1
            shared = self._shared_ts(known) if known >= 0 else None
            vs = np.empty(r[4], np.float64)
            jobs.append((self._mm[r[2] : r[2] + r[3]], self._baseline(series), shared, vs))
            done.append(c)
            todo += r[4]
            if todo >= _BATCH_SAMPLES:
                flush()
                todo = 0
        flush()
        return out

    def iter_series(self, mint: int, maxt: int) -> Iterator[SeriesData]:
        for a in range(0, self.num_series, 256):
            ids = range(a, min(a + 256, self.num_series))
            for i, got in zip(ids, self._samples(ids, mint, maxt), strict=True):
                if got is not None:
                    yield SeriesData(self.labels_of(i), *got)

    def ids_for(self, matchers: Sequence[Matcher]) -> IDS:
        return self.postings_for_matchers(matchers) if matchers else self.all_ids()

    def label_names(self, matchers: Sequence[Matcher]) -> set[str]:
        if not matchers:
            refs = np.unique((self._pkeys >> np.uint64(32)).astype(np.int64))
            return {self.symbols[r] for r in refs.tolist()}
        names: set[str] = set()
        for i in self.ids_for(matchers).tolist():
            names.update(self.labels_of(i).names())
        return names

    def label_values(self, name: str, matchers: Sequence[Matcher]) -> set[str]:
        a, b = self._key_range(name)
        if a == b:
            return set()
        if not matchers:
            return {self.symbols[r] for r in (self._pkeys[a:b] & _U32_MAX).tolist()}
        ids = self.ids_for(matchers)
        out = set()
        for k in range(a, b):
            if intersect_sorted(self._postings(k), ids).size:
                out.add(self.symbols[int(self._pkeys[k] & _U32_MAX)])
        return out

    def forget_cached(self) -> None:
        """Drop this block's decoded chunks from the shared cache (it is being deleted)."""
        CHUNK_CACHE.drop_block(self._key)

    def size_bytes(self) -> int:
        return sum(p.stat().st_size for p in self.path.iterdir() if p.is_file())

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            CHUNK_CACHE.drop_block(self._key)
            if isinstance(self._mm, mmap.mmap):
                # a decoded view may still refer to it; then GC unmaps it later
                with contextlib.suppress(BufferError):
                    self._mm.close()


def _map(path: Path, want: int | None) -> mmap.mmap | bytes:
    try:
        with open(path, "rb") as f:
            size = f.seek(0, 2)
            if want is not None and size != want:
                raise CorruptionError(f"{path}: size {size}, meta says {want}")
            if size < 8:
                raise CorruptionError(f"{path}: short file")
            mm = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    except OSError as e:
        raise CorruptionError(f"{path}: {e}") from None
    if mm[:4] != CHUNKS_MAGIC:
        mm.close()
        raise CorruptionError(f"{path}: bad magic")
    return mm
