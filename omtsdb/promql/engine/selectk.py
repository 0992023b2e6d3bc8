"""topk, bottomk, limitk and limit_ratio: which series of each group are kept at each step.

Per group, all steps at once: rows are ranked per step column by one ``lexsort`` (NaN after
numbers, absent rows last). Where the k-th and (k+1)-th values tie, or NaNs compete, the winner
depends on the order of Prometheus's heap, so only those steps replay it (``go_heap_select``).
"""

from __future__ import annotations

import math

import numpy as np

from omtsdb.model.labels import Labels
from omtsdb.model.samples import F64
from omtsdb.promql.engine.block import Block


def select_k(op: str, blk: Block, param: F64, groups: tuple[list[Labels], np.ndarray]) -> Block:
    glabels, gid = groups
    keep = np.zeros_like(blk.mask)
    n = blk.nsteps
    with np.errstate(invalid="ignore"):
        k = np.clip(np.nan_to_num(param, nan=0.0), 0, 2.0**62).astype(np.int64)
    hashes = (
        np.array([_ratio_hash(lb) for lb in blk.labels]) if op == "limit_ratio" else np.empty(0)
    )
    order_rows = np.argsort(gid, kind="stable")
    bounds = np.searchsorted(gid[order_rows], np.arange(len(glabels) + 1))
    for g in range(len(glabels)):
        rows = order_rows[bounds[g] : bounds[g + 1]]
        m = blk.mask[rows]
        if op == "limit_ratio":
            r = param[None, :]
            h = hashes[rows][:, None]
            keep[rows] = m & (r != 0) & np.where(r > 0, h < r, h >= 1 + r)
        elif op == "limitk":
            keep[rows] = m & (np.cumsum(m, axis=0) <= k[None, :])
        else:
            keep[rows] = _top_or_bottom(blk.vals[rows], m, k, op == "topk")
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


def _top_or_bottom(v: F64, m: np.ndarray, k: np.ndarray, top: bool) -> np.ndarray:
    nrows = v.shape[0]
    nan = np.isnan(v)
    cls = np.where(m, np.where(nan, 1, 0), 2)
    key = np.where(m & ~nan, -v if top else v, 0.0)
    order = np.lexsort((key, cls), axis=0)
    rank = np.empty_like(order)
    np.put_along_axis(rank, order, np.broadcast_to(np.arange(nrows)[:, None], order.shape), 0)
    keep: np.ndarray = m & (rank < k[None, :])
    cnt = m.sum(axis=0)
    partial = (k >= 1) & (k < cnt)
    if not partial.any():
        return keep
    cols = np.flatnonzero(partial)
    sv = np.take_along_axis(v[:, cols], order[:, cols], axis=0)
    kc = k[cols]
    idx = np.arange(cols.size)
    tie = sv[kc - 1, idx] == sv[kc, idx]
    has_nan = (m[:, cols] & nan[:, cols]).any(axis=0)
    for c, kk in zip(cols[tie | has_nan].tolist(), kc[tie | has_nan].tolist(), strict=True):
        present = np.flatnonzero(m[:, c])
        chosen = go_heap_select(v[present, c].tolist(), kk, top)
        keep[:, c] = False
        keep[present[chosen], c] = True
    return keep


def go_heap_select(vals: list[float], k: int, top: bool) -> list[int]:
    """Indexes kept by Prometheus's topk/bottomk heap (Go container/heap) over ``vals``."""

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


def _ratio_hash(lb: Labels) -> float:
    """A series' fixed point in [0, 1) for limit_ratio's deterministic sampling."""
    import zlib

    return zlib.crc32(str(lb).encode()) / 2**32
