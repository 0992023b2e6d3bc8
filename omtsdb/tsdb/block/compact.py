"""Compaction planning, merging blocks, retention and baseline learning for new blocks.

Ranges: blocks are cut from the head in 2 h windows and compacted into aligned 8 h and then
24 h windows (all aligned to UTC midnight, so a block never spans two UTC days and one
time-of-day baseline per series serves the whole block). Overlapping blocks (an import into
a range that already has data) are merged first.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path

from omtsdb.model.labels import Labels
from omtsdb.model.samples import F64, I64
from omtsdb.storage.interface import SeriesData
from omtsdb.tsdb.block.reader import Block
from omtsdb.tsdb.block.writer import BaselineFn, write_block
from omtsdb.tsdb.codec.baseline import DAY_MS, Baseline, learn_baseline
from omtsdb.tsdb.querier import merge_series

HOUR_MS = 3_600_000
DEFAULT_RANGES = (2 * HOUR_MS, 8 * HOUR_MS, 24 * HOUR_MS)


def merged_series(
    sources: Sequence[Iterable[SeriesData]],
) -> Iterator[tuple[Labels, I64, F64, I64 | None]]:
    """K-way merge of label-sorted series streams; equal label sets are merged sample-wise
    (the earlier source wins at equal timestamps)."""
    heads = (
        ((s.labels.sort_key(), k, n, s) for n, s in enumerate(src)) for k, src in enumerate(sources)
    )
    cur_key: object = None
    parts: list[SeriesData] = []
    for key, _k, _n, s in heapq.merge(*heads, key=lambda e: (e[0], e[1], e[2])):
        if parts and key != cur_key:
            m = merge_series(parts)
            yield m.labels, m.ts, m.vs, m.st
            parts = []
        cur_key = key
        parts.append(s)
    if parts:
        m = merge_series(parts)
        yield m.labels, m.ts, m.vs, m.st


def overlapping_groups(blocks: Sequence[Block]) -> list[list[Block]]:
    """Groups of blocks whose time ranges overlap (each group >= 2 blocks)."""
    out: list[list[Block]] = []
    cur: list[Block] = []
    end = -(2**63)
    for b in sorted(blocks, key=lambda b: (b.meta.min_time, b.meta.max_time)):
        if cur and b.meta.min_time < end:
            cur.append(b)
            end = max(end, b.meta.max_time)
            continue
        if len(cur) > 1:
            out.append(cur)
        cur, end = [b], b.meta.max_time
    if len(cur) > 1:
        out.append(cur)
    return out


def plan(blocks: Sequence[Block], ranges: Sequence[int] = DEFAULT_RANGES) -> list[Block]:
    """The next set of blocks to compact together, or [] when there is nothing to do."""
    groups = overlapping_groups(blocks)
    if groups:
        return groups[0]
    if not blocks:
        return []
    newest = max(b.meta.max_time for b in blocks)
    for r in ranges[1:]:
        windows: dict[int, list[Block]] = {}
        for b in blocks:
            w = b.meta.min_time // r
            if (b.meta.max_time - 1) // r == w and b.meta.max_time - b.meta.min_time < r:
                windows.setdefault(w, []).append(b)
        for w in sorted(windows):
            group = windows[w]
            # compact a window once it is complete: data exists at or after its end
            if len(group) > 1 and newest >= (w + 1) * r:
                return sorted(group, key=lambda b: b.meta.min_time)
    return []


def compact(
    parent: Path,
    blocks: Sequence[Block],
    *,
    baselines: BaselineFn | None = None,
    fsync: bool = True,
    on_step: Callable[[str], None] | None = None,
) -> str | None:
    """Merge ``blocks`` into one new block (atomically); returns its ULID. The caller deletes
    the sources afterwards (a crash in between leaves parents that ``DB.open`` removes)."""
    mint = min(b.meta.min_time for b in blocks)
    maxt = max(b.meta.max_time for b in blocks)
    sources = tuple(sorted({s for b in blocks for s in b.meta.sources}))
    origin = "head" if any(b.meta.origin == "head" for b in blocks) else "import"
    meta = write_block(
        parent,
        merged_series([b.iter_series(mint, maxt - 1) for b in blocks]),
        min_time=mint,
        max_time=maxt,
        origin=origin,
        level=max(b.meta.level for b in blocks) + 1,
        sources=sources,
        parents=tuple(b.meta.ulid for b in blocks),
        baselines=baselines,
        fsync=fsync,
        on_step=on_step,
    )
    return meta.ulid if meta is not None else None


def retention_victims(
    blocks: Sequence[Block], retention_ms: int, retention_bytes: int, other_bytes: int = 0
) -> list[Block]:
    """Blocks to delete: wholly older than ``retention_ms`` before the newest block's end,
    then the oldest ones while the total size exceeds ``retention_bytes`` (0: no limit)."""
    if not blocks:
        return []
    ordered = sorted(blocks, key=lambda b: b.meta.max_time)
    newest = ordered[-1].meta.max_time
    out = [b for b in ordered if retention_ms > 0 and b.meta.max_time <= newest - retention_ms]
    if retention_bytes > 0:
        keep = [b for b in ordered if b not in out]
        total = other_bytes + sum(b.size_bytes() for b in keep)
        for b in keep:
            if total <= retention_bytes:
                break
            out.append(b)
            total -= b.size_bytes()
    return out


class BaselineCache:
    """Baselines for blocks of UTC day ``D``, learned once per series from day ``D-1``.

    ``read(labels, mint, maxt)`` returns the series' samples in [mint, maxt] (or None)."""

    def __init__(self, read: Callable[[Labels, int, int], tuple[I64, F64] | None]) -> None:
        self._read = read
        self._day: int | None = None
        self._cache: dict[Labels, Baseline | None] = {}

    def for_block(self, min_time: int) -> BaselineFn:
        day = min_time // DAY_MS
        if day != self._day:
            self._day, self._cache = day, {}

        def fn(lb: Labels) -> Baseline | None:
            if lb in self._cache:
                return self._cache[lb]
            got = self._read(lb, (day - 1) * DAY_MS, day * DAY_MS - 1)
            b = learn_baseline(got[0], got[1]) if got is not None else None
            self._cache[lb] = b
            return b

        return fn
