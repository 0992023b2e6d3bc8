"""Merging what several sources (blocks and head, a primary and its secondaries) return for one
select.

``merge_batches`` gives what ``merge_series`` gives series by series: per series, the pieces in
order of their first timestamp (sources in their given order on ties), duplicates at equal
timestamps dropped with the earlier piece winning. All of it is done with array operations
over every sample at once; only the label union is per series.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

from omtsdb.model.labels import Labels
from omtsdb.model.samples import I64
from omtsdb.storage.interface import SelectHints, SeriesBatch, SeriesData

_LONG = 64  # samples per piece from which pieces are copied as slices
_NO_TS = np.empty(0, np.int64)
_NO_VS = np.empty(0, np.float64)


def labels_only_batch(labels: Iterable[Labels], limit: int = 0) -> SeriesBatch:
    """Series without samples (a ``func == "series"`` select), sorted, at most ``limit``."""
    out = sorted(labels, key=lambda lb: lb.sort_key())
    if limit > 0:
        del out[limit:]
    return SeriesBatch(out, _NO_TS, _NO_VS, np.zeros(len(out) + 1, np.int64))


def merge_selects(parts: Sequence[SeriesBatch], hints: SelectHints | None) -> SeriesBatch:
    """One select's answer from the answers of several sources: series merged sample-wise
    (labels only for ``func == "series"``), ``hints.limit`` applied, warnings kept."""
    warnings = [w for p in parts for w in p.warnings]
    if hints is not None and hints.labels_only:
        merged = labels_only_batch({lb for p in parts for lb in p.labels}, hints.limit)
    else:
        merged = merge_batches(parts).head(hints.limit if hints is not None else 0)
    return merged.with_warnings(warnings)


def merge_series(parts: list[SeriesData]) -> SeriesData:
    """One series from pieces held in several places: time order, duplicates dropped (the
    first piece wins at equal timestamps)."""
    if len(parts) == 1:
        return parts[0]
    parts = sorted(parts, key=lambda s: int(s.ts[0]) if s.ts.size else 0)
    ts = np.concatenate([p.ts for p in parts])
    vs = np.concatenate([p.vs for p in parts])
    st = None
    if any(p.st is not None for p in parts):
        st = np.concatenate([p.st if p.st is not None else np.zeros_like(p.ts) for p in parts])
    if ts.size > 1 and not np.all(ts[1:] > ts[:-1]):
        order = np.argsort(ts, kind="stable")
        ts, vs = ts[order], vs[order]
        keep = np.concatenate(([True], ts[1:] != ts[:-1]))
        ts, vs = ts[keep], vs[keep]
        if st is not None:
            st = st[order][keep]
    return SeriesData(parts[0].labels, ts, vs, st)


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
