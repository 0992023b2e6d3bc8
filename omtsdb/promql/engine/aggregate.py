"""Aggregation operators over groups of series, vectorised across steps.

Series are grouped by their grouping label set (a dict lookup per series), rows are sorted by
group, and each reduction is one ``ufunc.reduceat`` over the sorted rows for all steps.
"""

from __future__ import annotations

import warnings

import numpy as np

from omtsdb.errors import ExecutionError
from omtsdb.model.exposition.floats import format_go_f
from omtsdb.model.labels import METRIC_NAME, Labels, is_valid_label_name
from omtsdb.model.samples import F64
from omtsdb.promql.engine.block import Block


def group_labels(lb: Labels, grouping: tuple[str, ...], without: bool) -> Labels:
    if without:
        return lb.without(METRIC_NAME, *grouping)
    return lb.keep(*grouping)


def _groups(
    blk: Block, grouping: tuple[str, ...], without: bool
) -> tuple[list[Labels], np.ndarray]:
    keys: dict[Labels, int] = {}
    gid = np.empty(len(blk.labels), np.int64)
    for i, lb in enumerate(blk.labels):
        g = group_labels(lb, grouping, without)
        k = keys.get(g)
        if k is None:
            k = keys[g] = len(keys)
        gid[i] = k
    return list(keys), gid


def aggregate(
    op: str, blk: Block, param: F64 | str | None, grouping: tuple[str, ...], without: bool
) -> Block:
    n = blk.nsteps
    if len(blk) == 0:
        return Block.empty(n)
    if op in ("topk", "bottomk", "limitk", "limit_ratio"):
        assert isinstance(param, np.ndarray)
        return _select_k(op, blk, param, grouping, without)
    if op == "count_values":
        assert isinstance(param, str)
        return _count_values(blk, param, grouping, without)
    glabels, gid = _groups(blk, grouping, without)
    order = np.argsort(gid, kind="stable")
    g_sorted = gid[order]
    starts = np.flatnonzero(np.concatenate(([True], g_sorted[1:] != g_sorted[:-1])))
    vals = blk.vals[order]
    mask = blk.mask[order]
    present = np.logical_or.reduceat(mask, starts, axis=0)
    cnt = np.add.reduceat(mask.astype(np.float64), starts, axis=0)
    v0 = np.where(mask, vals, 0.0)
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        if op == "sum":
            out = np.add.reduceat(v0, starts, axis=0)
        elif op == "avg":
            out = np.add.reduceat(v0, starts, axis=0) / cnt
            inf = np.isinf(out) & present
            if inf.any():  # overflow: incremental mean as Prometheus does
                inc = np.add.reduceat(
                    np.where(
                        mask,
                        vals
                        / np.maximum(
                            cnt[np.searchsorted(starts, np.arange(len(g_sorted)), "right") - 1], 1
                        ),
                        0.0,
                    ),
                    starts,
                    axis=0,
                )
                out = np.where(inf, inc, out)
        elif op == "count":
            out = cnt
        elif op == "group":
            out = np.ones_like(cnt)
        elif op in ("min", "max"):
            fill = np.where(mask, vals, np.nan)
            f = np.fmin if op == "min" else np.fmax
            out = f.reduceat(fill, starts, axis=0)
        elif op in ("stddev", "stdvar"):
            mean = np.add.reduceat(v0, starts, axis=0) / cnt
            row_group = np.repeat(np.arange(len(starts)), np.diff(np.append(starts, len(g_sorted))))
            d = np.where(mask, vals - mean[row_group], 0.0)
            out = np.add.reduceat(d * d, starts, axis=0) / cnt
            if op == "stddev":
                out = np.sqrt(out)
        elif op == "quantile":
            assert isinstance(param, np.ndarray)
            out = np.full((len(starts), n), np.nan)
            ends = np.append(starts[1:], len(g_sorted))
            for k, (a, b) in enumerate(zip(starts, ends, strict=True)):
                sub = np.where(mask[a:b], vals[a:b], np.nan)
                out[k] = _quantile_cols(param, sub, mask[a:b])
        else:
            raise ExecutionError(f"unknown aggregation {op}")
    labels = [glabels[g] for g in g_sorted[starts]]
    return Block(labels, out, present)


def _quantile_cols(q: F64, sub: F64, mask: np.ndarray) -> F64:
    """Prometheus's quantile over the present values of each column."""
    n = mask.sum(axis=0)
    srt = np.sort(np.where(mask, sub, np.inf), axis=0)
    # NaNs sort last with np.sort; Prometheus sorts NaN first? it uses sort.Float64s (NaN first)
    out = np.full(sub.shape[1], np.nan)
    for s in np.flatnonzero(n > 0):
        col = np.sort(sub[mask[:, s], s])
        nan = np.isnan(col)
        col = np.concatenate((col[nan], col[~nan]))
        qq = q[s]
        if np.isnan(qq):
            out[s] = np.nan
        elif qq < 0:
            out[s] = -np.inf
        elif qq > 1:
            out[s] = np.inf
        else:
            rank = qq * (col.size - 1)
            lo = int(np.floor(rank))
            hi = min(lo + 1, col.size - 1)
            w = rank - lo
            out[s] = col[lo] if w == 0 else col[lo] * (1 - w) + col[hi] * w
    del srt
    return out


def _select_k(op: str, blk: Block, param: F64, grouping: tuple[str, ...], without: bool) -> Block:
    glabels, gid = _groups(blk, grouping, without)
    keep = np.zeros_like(blk.mask)
    n = blk.nsteps
    for g in range(len(glabels)):
        rows = np.flatnonzero(gid == g)
        sub_v = blk.vals[rows]
        sub_m = blk.mask[rows]
        for s in range(n):
            present = np.flatnonzero(sub_m[:, s])
            if present.size == 0:
                continue
            k_f = param[s]
            if op == "limit_ratio":
                ratio = k_f
                if np.isnan(ratio) or ratio == 0:
                    continue
                # deterministic sampling by label hash, as Prometheus does
                sel = [r for r in present if _ratio_keep(blk.labels[rows[r]], ratio)]
                keep[rows[sel], s] = True
                continue
            if np.isnan(k_f):
                raise ExecutionError("Parameter value is NaN")
            k = int(min(k_f, 9.2e18))
            if k < 1:
                continue
            if op == "limitk":
                keep[rows[present[:k]], s] = True
                continue
            v = sub_v[present, s]
            if k >= v.size:
                keep[rows[present], s] = True
                continue
            nan = np.isnan(v)
            key = np.where(nan, -np.inf if op == "topk" else np.inf, v)
            idx = np.lexsort((nan, -key if op == "topk" else key))
            kth, nxt = idx[k - 1], idx[k]
            if nan.any() or v[kth] == v[nxt]:
                # a tie (or NaN) at the boundary: which series wins depends on the order of
                # Prometheus's heap, so replay it
                chosen = go_heap_select(v.tolist(), k, op == "topk")
                keep[rows[present[chosen]], s] = True
            else:
                keep[rows[present[idx[:k]]], s] = True
    out = Block(list(blk.labels), blk.vals, blk.mask & keep)
    if n == 1 and op in ("topk", "bottomk"):
        # an instant topk lists the largest first (bottomk the smallest), as Prometheus does
        out = out.compact()
        v = out.vals[:, 0]
        nan = np.isnan(v)
        key = np.where(nan, 0.0, v)
        order = np.lexsort((-key if op == "topk" else key, nan)).tolist()
        out = Block([out.labels[i] for i in order], out.vals[order], out.mask[order])
        out.sort_order = order
    return out


def go_heap_select(vals: list[float], k: int, top: bool) -> list[int]:
    """Indexes kept by Prometheus's topk/bottomk heap (Go container/heap) over ``vals``."""
    import math

    def less(a: float, b: float) -> bool:
        if math.isnan(a):
            return True
        return a < b if top else a > b

    h: list[int] = []

    def up(j: int) -> None:
        while True:
            i = (j - 1) // 2
            if j <= 0 or not less(vals[h[j]], vals[h[i]]):
                break
            h[i], h[j] = h[j], h[i]
            j = i

    def down(i: int) -> None:
        n = len(h)
        while True:
            j1 = 2 * i + 1
            if j1 >= n:
                break
            j = j1
            j2 = j1 + 1
            if j2 < n and less(vals[h[j2]], vals[h[j1]]):
                j = j2
            if not less(vals[h[j]], vals[h[i]]):
                break
            h[i], h[j] = h[j], h[i]
            i = j

    for idx, v in enumerate(vals):
        if len(h) < k:
            h.append(idx)
            up(len(h) - 1)
            continue
        m = vals[h[0]]
        better = (m < v) if top else (m > v)
        if better or (math.isnan(m) and not math.isnan(v)):
            h[0] = idx
            if k > 1:
                down(0)
    return h


def _ratio_keep(lb: Labels, ratio: float) -> bool:
    import zlib

    h = zlib.crc32(str(lb).encode()) / 2**32
    return h < ratio if ratio > 0 else h >= 1 + ratio


def _count_values(blk: Block, label: str, grouping: tuple[str, ...], without: bool) -> Block:
    if not is_valid_label_name(label):
        raise ExecutionError(f"invalid label name {label!r}")
    out: dict[Labels, np.ndarray] = {}
    n = blk.nsteps
    for i, lb in enumerate(blk.labels):
        g = group_labels(lb, grouping, without)
        for s in np.flatnonzero(blk.mask[i]):
            key = g.set(label, format_go_f(float(blk.vals[i, s])))
            arr = out.get(key)
            if arr is None:
                arr = out[key] = np.zeros(n)
            arr[s] += 1
    labels = list(out)
    vals = np.array([out[k] for k in labels]).reshape(len(labels), n)
    return Block(labels, vals, vals > 0)
