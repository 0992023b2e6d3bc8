"""Merging the series batches of several sources (blocks, head) into one.

The result is what ``querier.merge_series`` gives series by series: per series, the pieces in
order of their first timestamp (sources in their given order on ties), duplicates at equal
timestamps dropped with the earlier piece winning. All of it is done with array operations
over every sample at once; only the label union is per series.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from omtsdb.model.labels import Labels
from omtsdb.model.samples import I64
from omtsdb.storage.interface import SeriesBatch

_LONG = 64  # samples per piece from which pieces are copied as slices


def _positions(batches: Sequence[SeriesBatch]) -> tuple[list[Labels], list[I64]]:
    """The merged (sorted) label list and, per batch, the output index of each series."""
    first = batches[0].labels
    if all(b.labels == first for b in batches[1:]):
        same = np.arange(len(first), dtype=np.int64)
        return first, [same] * len(batches)
    index: dict[Labels, int] = {}
    for b in batches:
        for lb in b.labels:
            index.setdefault(lb, len(index))
    uniq = list(index)
    order = sorted(range(len(uniq)), key=lambda i: uniq[i].sort_key())
    rank = np.empty(len(uniq), np.int64)
    rank[order] = np.arange(len(uniq), dtype=np.int64)
    out = [rank[np.fromiter((index[lb] for lb in b.labels), np.int64, len(b))] for b in batches]
    return [uniq[i] for i in order], out


def merge_batches(batches: Sequence[SeriesBatch]) -> SeriesBatch:
    batches = [b for b in batches if len(b)]
    if not batches:
        return SeriesBatch.empty()
    if len(batches) == 1:
        return batches[0]
    labels, where = _positions(batches)
    # one piece per (batch, series): its output series, first timestamp, length
    p_out = np.concatenate(where)
    p_first = np.concatenate([b.ts[b.offsets[:-1]] for b in batches])
    p_last = np.concatenate([b.ts[b.offsets[1:] - 1] for b in batches])
    p_len = np.concatenate([b.lens for b in batches])
    order = np.lexsort((p_first, p_out))  # stable: source order on ties
    out_len = np.bincount(p_out, weights=p_len, minlength=len(labels)).astype(np.int64)
    offsets = np.concatenate(([0], np.cumsum(out_len)))
    sorted_len = p_len[order]
    total = int(offsets[-1])
    # pieces of one series overlapping in time need the per-sample dedupe
    so, sf, sl = p_out[order], p_first[order], p_last[order]
    overlap = bool(np.any((so[1:] == so[:-1]) & (sf[1:] <= sl[:-1])))
    with_st = any(b.st is not None for b in batches)
    sts = [b.st if b.st is not None else np.zeros_like(b.ts) for b in batches] if with_st else []
    if total >= _LONG * p_out.size:
        # long pieces: concatenating views beats computing a destination per sample
        src = np.repeat(np.arange(len(batches)), [len(b) for b in batches])[order].tolist()
        first = np.concatenate([b.offsets[:-1] for b in batches])[order].tolist()
        ln = sorted_len.tolist()
        tss = [b.ts for b in batches]
        vss = [b.vs for b in batches]
        pieces = list(zip(src, first, ln, strict=True))
        ts = np.concatenate([tss[k][a : a + n] for k, a, n in pieces])
        vs = np.concatenate([vss[k][a : a + n] for k, a, n in pieces])
        st = np.concatenate([sts[k][a : a + n] for k, a, n in pieces]) if with_st else None
        merged = SeriesBatch(labels, ts, vs, offsets, st)
        return _dedupe(merged) if overlap else merged
    ts = np.empty(total, np.int64)
    vs = np.empty(total, np.float64)
    st = np.empty(total, np.int64) if with_st else None
    p_dest = np.empty(p_out.size, np.int64)
    p_dest[order] = np.concatenate(([0], np.cumsum(sorted_len)[:-1]))
    at = 0
    for j, b in enumerate(batches):
        k = len(b)
        shift = p_dest[at : at + k] - b.offsets[:-1]
        dest = np.arange(b.ts.size, dtype=np.int64) + np.repeat(shift, b.lens)
        ts[dest] = b.ts
        vs[dest] = b.vs
        if st is not None:
            st[dest] = sts[j]
        at += k
    merged = SeriesBatch(labels, ts, vs, offsets, st)
    return _dedupe(merged) if overlap else merged


def _dedupe(b: SeriesBatch) -> SeriesBatch:
    """Restore strictly increasing timestamps within each series where pieces overlapped."""
    ts = b.ts
    if ts.size < 2:
        return b
    start = np.zeros(ts.size, np.bool_)
    start[b.offsets[:-1]] = True
    bad = (ts[1:] <= ts[:-1]) & ~start[1:]
    if not bad.any():
        return b
    sid = np.cumsum(start) - 1
    order = np.lexsort((ts, sid))  # stable: the earlier piece first at equal timestamps
    ts, vs = ts[order], b.vs[order]
    st = None if b.st is None else b.st[order]
    keep = np.ones(ts.size, np.bool_)
    keep[1:] = (ts[1:] != ts[:-1]) | start[1:]
    return SeriesBatch(b.labels, ts, vs, b.offsets, st).take(keep)
