"""Aggregation operators over groups of series, vectorised across steps.

Series are grouped by their grouping label set (a dict lookup per series), rows are sorted by
group, and each reduction is one ``ufunc.reduceat`` over the sorted rows for all steps.
"""

from __future__ import annotations

import math
import warnings
from typing import TYPE_CHECKING

import numpy as np

from omtsdb.errors import ExecutionError
from omtsdb.model.exposition.floats import format_go_f, format_go_g
from omtsdb.model.labels import METRIC_NAME, Labels, is_valid_label_name, quote
from omtsdb.model.samples import F64
from omtsdb.promql.engine import annotate as anno
from omtsdb.promql.engine.block import MEMO_MAX, Block, RowsMemo
from omtsdb.promql.engine.selectk import select_k
from omtsdb.promql.functions.kahan import CANCELLATION, EXACT_WIDTH, kahan_mean, kahan_sum
from omtsdb.promql.parser.ast import AggregateExpr

if TYPE_CHECKING:
    from omtsdb.promql.engine.evaluator import Context


_GROUPS: dict[tuple[Labels, tuple[str, ...], bool], Labels] = {}


def group_labels(lb: Labels, grouping: tuple[str, ...], without: bool) -> Labels:
    key = (lb, grouping, without)
    got = _GROUPS.get(key)
    if got is None:
        got = lb.without(METRIC_NAME, *grouping) if without else lb.keep(*grouping)
        if len(_GROUPS) >= MEMO_MAX:
            _GROUPS.clear()
        _GROUPS[key] = got
    return got


_GROUPINGS: RowsMemo[tuple[list[Labels], np.ndarray]] = RowsMemo()


def _groups(
    blk: Block, grouping: tuple[str, ...], without: bool
) -> tuple[list[Labels], np.ndarray]:
    """Group label sets and each row's group (memoised per list of rows' label sets)."""
    return _GROUPINGS.get(
        [blk.labels], (grouping, without), lambda: _group_rows(blk, grouping, without)
    )


def _group_rows(
    blk: Block, grouping: tuple[str, ...], without: bool
) -> tuple[list[Labels], np.ndarray]:
    keys: dict[Labels, int] = {}
    ids = []
    for lb in blk.labels:
        g = group_labels(lb, grouping, without)
        k = keys.get(g)
        if k is None:
            k = keys[g] = len(keys)
        ids.append(k)
    gid = np.array(ids, np.int64)
    gid.flags.writeable = False  # shared by every query that finds it memoised
    return list(keys), gid


def aggregate(
    op: str, blk: Block, param: F64 | str | None, grouping: tuple[str, ...], without: bool
) -> Block:
    n = blk.nsteps
    if len(blk) == 0:
        return Block.empty(n)
    if op in ("topk", "bottomk", "limitk", "limit_ratio"):
        assert isinstance(param, np.ndarray)
        return select_k(op, blk, param, _groups(blk, grouping, without))
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
        if op in ("sum", "avg"):
            out = _compensate(op, np.add.reduceat(v0, starts, axis=0), cnt, vals, mask, starts)
        elif op == "count":
            out = cnt
        elif op == "group":
            out = np.ones_like(cnt)
        elif op in ("min", "max"):
            fill = np.where(mask, vals, np.nan)
            f = np.fmin if op == "min" else np.fmax
            out = f.reduceat(fill, starts, axis=0)
            _first_zero(out, fill, starts)
        elif op in ("stddev", "stdvar") and (exact := _welford(vals, mask, starts)) is not None:
            out = np.sqrt(exact) if op == "stddev" else exact
        elif op in ("stddev", "stdvar"):
            row_group = np.repeat(np.arange(len(starts)), np.diff(np.append(starts, len(g_sorted))))
            # shift by a member of the group: exact zeros for equal values, less cancellation
            ref = np.fmax.reduceat(np.where(mask, vals, np.nan), starts, axis=0)
            d0 = np.where(mask, vals - ref[row_group], 0.0)
            mean = np.add.reduceat(d0, starts, axis=0) / cnt
            d = np.where(mask, d0 - mean[row_group], 0.0)
            out = np.add.reduceat(d * d, starts, axis=0) / cnt
            if op == "stddev":
                out = np.sqrt(out)
        elif op == "quantile":
            assert isinstance(param, np.ndarray)
            out = np.full((len(starts), n), np.nan)
            ends = np.append(starts[1:], len(g_sorted))
            for k, (a, b) in enumerate(zip(starts, ends, strict=True)):  # per group
                out[k] = _quantile_cols(param, vals[a:b], mask[a:b])
        else:
            raise ExecutionError(f"unknown aggregation {op}")
    labels = [glabels[g] for g in g_sorted[starts]]
    return Block(labels, out, present)


def _first_zero(out: F64, fill: F64, starts: np.ndarray) -> None:
    """Where a group's min or max is zero, the sign of its first zero member: Prometheus keeps
    the earlier of equal values, numpy's ``fmax``/``fmin`` the later of +0 and -0."""
    zero = out == 0
    if not zero.any():
        return
    rows = np.arange(fill.shape[0])[:, None]
    first = np.minimum.reduceat(np.where(fill == 0, rows, fill.shape[0]), starts, axis=0)
    g, col = np.nonzero(zero)
    out[g, col] = fill[first[g, col], col]


WELFORD_CELLS = 4_000_000


def _welford(vals: F64, mask: np.ndarray, starts: np.ndarray) -> F64 | None:
    """Prometheus's stdvar: per (group, step), over the group's present series in order,
    ``count++; delta = f - mean; mean += delta / count; value += delta * (f - mean)`` from
    ``mean = first, value = 0`` (NaN when the first is NaN or ±Inf), then ``value / count``.
    One vectorised step per group member; None when the padded matrix would be too large
    (the caller's two-pass variance then answers, equal to within rounding)."""
    nrows, nsteps = vals.shape
    sizes = np.diff(np.append(starts, nrows))
    width = int(sizes.max())
    if starts.size * width * nsteps > WELFORD_CELLS:
        return None
    row_group = np.repeat(np.arange(starts.size), sizes)
    rank = np.arange(nrows) - starts[row_group]
    pad_v = np.zeros((starts.size, width, nsteps))
    pad_m = np.zeros((starts.size, width, nsteps), np.bool_)
    pad_v[row_group, rank] = vals
    pad_m[row_group, rank] = mask
    order = np.argsort(~pad_m, axis=1, kind="stable")  # present series first, in order
    pad_v = np.take_along_axis(pad_v, order, axis=1)
    pad_m = np.take_along_axis(pad_m, order, axis=1)
    first = pad_v[:, 0]
    mean = first.copy()
    value = np.where(np.isfinite(first), 0.0, np.nan)
    count = np.ones_like(mean)
    for j in range(1, width):
        ok = pad_m[:, j]
        if not ok.any():
            break
        f = pad_v[:, j]
        c = count + 1
        delta = f - mean
        new_mean = mean + delta / c
        new_value = value + delta * (f - new_mean)
        mean = np.where(ok, new_mean, mean)
        value = np.where(ok, new_value, value)
        count = np.where(ok, c, count)
    out: F64 = value / count
    return out


def _compensate(
    op: str, plain: F64, cnt: F64, vals: F64, mask: np.ndarray, starts: np.ndarray
) -> F64:
    """Prometheus sums (and averages) with Kahan compensation in series order. Groups of up to
    ``EXACT_WIDTH`` series take that sequential sum in every cell, so results are bit-exact;
    in larger groups only the cells where terms cancel heavily or the sum overflows are
    recomputed. The cells are summed from a padded ``[cells, group size]`` matrix."""
    out = plain / cnt if op == "avg" else plain
    nrows = vals.shape[0]
    sizes = np.diff(np.append(starts, nrows))
    if int(sizes.max()) <= EXACT_WIDTH:  # small groups: the sequential sum everywhere (exact)
        need = cnt > 1
    else:
        mag = np.add.reduceat(np.where(mask, np.abs(vals), 0.0), starts, axis=0)
        need = ~np.isfinite(plain) | (mag > np.abs(plain) * CANCELLATION)
    if not need.any():
        return out
    if sizes.min() == sizes.max():  # groups of one size: the sorted rows are the padded matrix
        g, width = starts.size, int(sizes[0])
        m2 = vals.reshape(g, width, -1).transpose(0, 2, 1).reshape(-1, width)
        k2 = mask.reshape(g, width, -1).transpose(0, 2, 1).reshape(-1, width)
        comp = kahan_sum(m2, k2) if op == "sum" else kahan_mean(m2, k2)
        return np.where(need, comp.reshape(g, -1), out)
    row_group = np.repeat(np.arange(starts.size), sizes)
    rank = np.arange(nrows) - starts[row_group]
    groups = np.flatnonzero(need.any(axis=1))
    sel = np.isin(row_group, groups)
    gi, ri = np.searchsorted(groups, row_group[sel]), rank[sel]
    width = int(sizes[groups].max())
    cols_all = np.flatnonzero(need[groups].any(axis=0))
    res = out.copy()
    # bounded padded matrices: [groups, width, chunk of step columns]
    chunk = max(1, 4_000_000 // max(1, groups.size * width))
    for a in range(0, cols_all.size, chunk):
        cols = cols_all[a : a + chunk]
        pad_v = np.zeros((groups.size, width, cols.size))
        pad_m = np.zeros((groups.size, width, cols.size), np.bool_)
        pad_v[gi, ri] = vals[sel][:, cols]  # in series order; absent cells add nothing
        pad_m[gi, ri] = mask[sel][:, cols]
        m2 = pad_v.transpose(0, 2, 1).reshape(-1, width)
        k2 = pad_m.transpose(0, 2, 1).reshape(-1, width)
        comp = kahan_sum(m2, k2) if op == "sum" else kahan_mean(m2, k2)
        comp = comp.reshape(groups.size, cols.size)
        sub = res[np.ix_(groups, cols)]
        res[np.ix_(groups, cols)] = np.where(need[np.ix_(groups, cols)], comp, sub)
    return res


def check_param(ctx: Context, e: AggregateExpr, param: F64 | str | None) -> bool:
    """Prometheus's checks of an aggregation parameter over all steps, before any input is
    looked at: errors for NaN counts, warnings for quantiles/ratios out of range. Returns
    False when no output is possible (k < 1 or ratio 0 at every step)."""
    if not isinstance(param, np.ndarray) or e.param is None:
        return True
    op, pos = e.op, e.param.pos
    nan = bool(np.isnan(param).any())
    fin = param[~np.isnan(param)]
    hi = float(fin.max()) if fin.size else math.nan
    lo = float(fin.min()) if fin.size else math.nan
    if op in ("topk", "bottomk", "limitk"):
        if hi < 1:
            return False
        if nan:
            raise ExecutionError("Parameter value is NaN")
        if lo <= -(2.0**63):
            raise ExecutionError(f"Scalar value {format_go_g(lo)} underflows int64")
        if hi >= 2.0**63:
            raise ExecutionError(f"Scalar value {format_go_g(hi)} overflows int64")
    elif op == "limit_ratio":
        if hi == 0 and lo == 0:
            return False
        if nan:
            raise ExecutionError("Ratio value is NaN")
        for v, cap in ((hi, 1.0), (lo, -1.0)):
            if (v > 1.0) if cap > 0 else (v < -1.0):
                msg = f"ratio value should be between -1 and 1, got {format_go_g(v)}, capping to "
                anno.warn(ctx, msg + format_go_g(cap), pos)
    elif op == "quantile":
        if nan:
            anno.invalid_quantile(ctx, math.nan, pos)
        if hi > 1:
            anno.invalid_quantile(ctx, hi, pos)
        if lo < 0:
            anno.invalid_quantile(ctx, lo, pos)
    return True


def _quantile_cols(q: F64, sub: F64, mask: np.ndarray) -> F64:
    """Prometheus's ``quantile`` over the present values of each column (NaN sorts first,
    linear interpolation between the closest ranks), all columns at once."""
    n = mask.sum(axis=0)
    # order per column: present NaNs, present values ascending, absent cells
    group = np.where(mask, np.where(np.isnan(sub), 0, 1), 2)
    order = np.lexsort((np.where(mask & ~np.isnan(sub), sub, 0.0), group), axis=0)
    srt = np.take_along_axis(sub, order, axis=0)
    cols = np.arange(sub.shape[1])
    with np.errstate(all="ignore"):
        rank = np.clip(np.nan_to_num(q), 0.0, 1.0) * np.maximum(n - 1, 0)
        lo = np.clip(np.floor(rank), 0, np.maximum(n - 1, 0)).astype(np.int64)
        hi = np.minimum(lo + 1, np.maximum(n - 1, 0))
        w = rank - np.floor(rank)
        a, b = srt[lo, cols], srt[hi, cols]
        out = np.where(w == 0, a, a * (1 - w) + b * w)
    out = np.where(q < 0, -np.inf, np.where(q > 1, np.inf, out))
    res: F64 = np.where(np.isnan(q) | (n == 0), np.nan, out)
    return res


def _count_values(blk: Block, label: str, grouping: tuple[str, ...], without: bool) -> Block:
    if not is_valid_label_name(label):
        raise ExecutionError(f"invalid label name {quote(label)}")
    n = blk.nsteps
    glabels, gid = _groups(blk, grouping, without)
    r, c = np.nonzero(blk.mask)
    if r.size == 0:
        return Block.empty(n)
    # format each distinct value once; distinct bit patterns may share a text (NaN payloads)
    bits, vinv = np.unique(blk.vals[r, c].view(np.int64), return_inverse=True)
    text_id: dict[str, int] = {}
    tmap = np.array(
        [text_id.setdefault(format_go_f(float(x)), len(text_id)) for x in bits.view(np.float64)]
    )
    nt = len(text_id)
    key = gid[r] * nt + tmap[np.asarray(vinv).reshape(-1)]
    ukey, kinv = np.unique(key, return_inverse=True)
    counts = np.zeros((ukey.size, n))
    np.add.at(counts, (np.asarray(kinv).reshape(-1), c), 1.0)
    texts = list(text_id)
    out: dict[Labels, np.ndarray] = {}
    for row, k in enumerate(ukey.tolist()):  # per output series
        lb = glabels[k // nt].set(label, texts[k % nt])
        if lb in out:
            out[lb] = out[lb] + counts[row]
        else:
            out[lb] = counts[row]
    labels = list(out)
    vals = np.array([out[lb] for lb in labels]).reshape(len(labels), n)
    return Block(labels, vals, vals > 0)
