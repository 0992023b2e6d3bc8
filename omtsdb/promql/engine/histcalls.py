"""histogram_quantile, histogram_quantiles and histogram_fraction over classic ``le`` buckets.

Series are grouped into histograms by their labels without ``le`` (the metric name is part of
the identity; it is dropped on output). Within a histogram the buckets present can differ from
step to step; steps are grouped by their presence pattern (usually one) and each group of steps
is computed at once by the kernels in ``functions.histogram``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from omtsdb.model.exposition.floats import format_go_g, parse_float
from omtsdb.model.labels import BUCKET_LABEL, METRIC_NAME, Labels
from omtsdb.model.samples import F64, I64
from omtsdb.promql.engine import annotate as anno
from omtsdb.promql.engine.block import MEMO_MAX, Block
from omtsdb.promql.functions.histogram import (
    BoolArr,
    Forced,
    bucket_fraction,
    bucket_quantile,
    ensure_monotonic,
)
from omtsdb.promql.parser.ast import Call, Expr, ParenExpr, StringLiteral

if TYPE_CHECKING:
    from omtsdb.promql.engine.evaluator import Evaluator

MONOTONICITY = (
    "input to histogram_quantile needed to be fixed for monotonicity (see "
    "https://prometheus.io/docs/prometheus/latest/querying/functions/#histogram_quantile)"
)


@dataclass(slots=True)
class Hist:
    name: str
    labels: Labels  # output labels: without __name__ and le
    ub: F64  # upper bound per row
    rows: I64  # rows of the input block


@dataclass(slots=True)
class _Forced:
    min_ts: int
    max_ts: int
    min_bucket: float
    max_bucket: float
    max_diff: float
    count: int


_SPLIT: dict[Labels, tuple[float, Labels | None]] = {}


def _split_le(lb: Labels) -> tuple[float, Labels | None]:
    """A bucket series' upper bound and its histogram's labels (``le`` removed), memoised per
    label set (dashboards ask for the same buckets again and again); ``(nan, None)`` when the
    ``le`` label is missing or malformed."""
    try:
        got: tuple[float, Labels | None] = (
            parse_float(lb.get(BUCKET_LABEL)),
            lb.without(BUCKET_LABEL),
        )
    except ValueError:
        got = (math.nan, None)
    if len(_SPLIT) >= MEMO_MAX:
        _SPLIT.clear()
    _SPLIT[lb] = got
    return got


def classic_histograms(ev: Evaluator, blk: Block, arg: Expr) -> list[Hist]:
    """Group the series of ``blk`` into classic histograms; warn about bad ``le`` labels."""
    groups: dict[Labels, tuple[list[float], list[int]]] = {}
    for i, lb in enumerate(blk.labels):
        split = _SPLIT.get(lb)
        if split is None:
            split = _split_le(lb)
        ub, key = split
        if key is None:
            le = lb.get(BUCKET_LABEL)
            msg = f'bucket label "le" is missing or has a malformed value of "{le}"'
            anno.warn(ev.ctx, anno.for_metric(msg, lb.name), arg.pos)
            continue
        g = groups.setdefault(key, ([], []))
        g[0].append(ub)
        g[1].append(i)
    return [
        Hist(key.name, key.without(METRIC_NAME), np.array(ubs), np.array(rows, np.int64))
        for key, (ubs, rows) in groups.items()
    ]


def _patterns(h: Hist, blk: Block) -> Iterator[tuple[I64, F64, F64]]:
    """(step columns, sorted distinct bounds, coalesced counts[nb, len(cols)]) for each set of
    steps that have the same buckets present."""
    present = blk.mask[h.rows]
    cols_all = np.flatnonzero(present.any(axis=0))
    if cols_all.size == 0:
        return
    pats, inv = _presence_patterns(present[:, cols_all])
    for p, pat in enumerate(pats):
        cols = cols_all[inv == p]
        rows, ub = h.rows[pat], h.ub[pat]
        order = np.argsort(ub, kind="stable")
        ub = ub[order]
        counts = blk.vals[rows[order]][:, cols]
        if ub.size > 1 and bool((ub[1:] == ub[:-1]).any()):
            starts = np.flatnonzero(np.concatenate(([True], ub[1:] != ub[:-1])))
            counts = np.add.reduceat(counts, starts, axis=0)
            ub = ub[starts]
        yield cols, ub, counts


def _presence_patterns(present: np.ndarray) -> tuple[np.ndarray, I64]:
    """Distinct columns of a boolean ``[nb, k]`` matrix and, per column, its pattern index."""
    nb, k = present.shape
    if present.all():
        return np.ones((1, nb), np.bool_), np.zeros(k, np.int64)
    if nb <= 62:
        code = (present.astype(np.int64) << np.arange(nb, dtype=np.int64)[:, None]).sum(axis=0)
        _, first, inv = np.unique(code, return_index=True, return_inverse=True)
        return present[:, first].T, np.asarray(inv, np.int64).reshape(-1)
    pats, inv = np.unique(present.T, axis=0, return_inverse=True)
    return pats, np.asarray(inv, np.int64).reshape(-1)


def _strip(e: Expr) -> Expr:
    while isinstance(e, ParenExpr):
        e = e.expr
    return e


def _check_quantile(ev: Evaluator, q: F64, arg: Expr) -> None:
    bad = np.isnan(q) | (q < 0) | (q > 1)
    if bad.any():
        anno.invalid_quantile(ev.ctx, float(q[np.argmax(bad)]), arg.pos)


Segment = tuple[int, I64, F64]  # (histogram index, step columns, counts[nb, len(cols)])


def _batches(hists: list[Hist], blk: Block) -> Iterator[tuple[F64, list[Segment]]]:
    """Segments of all histograms grouped by bucket layout, so that histograms sharing their
    bounds (the usual case) are computed together in one kernel call."""
    groups: dict[bytes, tuple[F64, list[Segment]]] = {}
    for j, h in enumerate(hists):
        for cols, ub, counts in _patterns(h, blk):
            groups.setdefault(ub.tobytes(), (ub, []))[1].append((j, cols, counts))
    yield from groups.values()


def _quantiles(
    ev: Evaluator, q: F64, blk: Block, hists: list[Hist], forced: dict[str, _Forced]
) -> tuple[F64, np.ndarray]:
    n = ev.n
    vals = np.full((len(hists), n), np.nan)
    mask = np.zeros((len(hists), n), np.bool_)
    for ub, segs in _batches(hists, blk):
        cols_all = np.concatenate([cols for _, cols, _ in segs])
        mono, fx = ensure_monotonic(ub, np.concatenate([c for _, _, c in segs], axis=1))
        qq = q[cols_all]
        res = bucket_quantile(qq, ub, mono)
        # Prometheus checks monotonicity only for a valid quantile and a +Inf bucket
        hit = fx.forced & ~np.isnan(qq) & (qq >= 0) & (qq <= 1)
        check = bool(ub.size and np.isposinf(ub[-1]) and hit.any())
        off = 0
        for j, cols, _ in segs:
            sl = slice(off, off + cols.size)
            off += cols.size
            vals[j, cols] = res[sl]
            mask[j, cols] = True
            if check and hit[sl].any():
                sub = Forced(fx.forced[sl], fx.min_bucket[sl], fx.max_bucket[sl], fx.max_diff[sl])
                _note_forced(forced, hists[j].name, ev.times[cols[hit[sl]]], sub, hit[sl])
    return vals, mask


def _note_forced(forced: dict[str, _Forced], name: str, ts: I64, fx: Forced, hit: BoolArr) -> None:
    cur = _Forced(
        int(ts.min()),
        int(ts.max()),
        float(fx.min_bucket[hit].min()),
        float(fx.max_bucket[hit].max()),
        float(fx.max_diff[hit].max()),
        int(hit.sum()),
    )
    old = forced.get(name)
    if old is not None:
        cur.min_ts, cur.max_ts = min(cur.min_ts, old.min_ts), max(cur.max_ts, old.max_ts)
        cur.min_bucket = min(cur.min_bucket, old.min_bucket)
        cur.max_bucket = max(cur.max_bucket, old.max_bucket)
        cur.max_diff = max(cur.max_diff, old.max_diff)
        cur.count += old.count
    forced[name] = cur


def _report_forced(ev: Evaluator, forced: dict[str, _Forced], arg: Expr) -> None:
    for name, f in forced.items():
        t0 = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(f.min_ts // 1000))
        t1 = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(f.max_ts // 1000))
        msg = (
            f"{anno.for_metric(MONOTONICITY, name)}, from buckets {format_go_g(f.min_bucket)} "
            f"to {format_go_g(f.max_bucket)}, with a max diff of {f.max_diff:.2g}, over "
            f"{f.count} samples from {t0} to {t1}"
        )
        anno.info(ev.ctx, msg, arg.pos)


def histogram_quantile(ev: Evaluator, e: Call) -> Block:
    q = ev.eval_scalar(e.args[0])
    blk = ev.eval_block(e.args[1])
    _check_quantile(ev, q, e.args[0])
    hists = classic_histograms(ev, blk, e.args[1])
    forced: dict[str, _Forced] = {}
    vals, mask = _quantiles(ev, q, blk, hists, forced)
    _report_forced(ev, forced, e.args[1])
    return Block([h.labels for h in hists], vals, mask).compact().check_unique()


def openmetrics_float(v: float) -> str:
    """Prometheus's ``labels.FormatOpenMetricsFloat``: Go's shortest %g, with ``.0`` added
    to integral values."""
    if math.isnan(v):
        return "NaN"
    if math.isinf(v):
        return "+Inf" if v > 0 else "-Inf"
    s = format_go_g(v)
    return s if ("." in s or "e" in s) else s + ".0"


def histogram_quantiles(ev: Evaluator, e: Call) -> Block:
    blk = ev.eval_block(e.args[0])
    label_arg = _strip(e.args[1])
    assert isinstance(label_arg, StringLiteral)
    label = label_arg.value
    qs = [(ev.eval_scalar(a), a) for a in e.args[2:]]
    for q, a in qs:
        _check_quantile(ev, q, a)
    hists = classic_histograms(ev, blk, e.args[0])
    forced: dict[str, _Forced] = {}
    labels: list[Labels] = []
    parts_v, parts_m = [], []
    for q, _ in qs:
        vals, mask = _quantiles(ev, q, blk, hists, forced)
        # the quantile label takes the value of q at each step (usually one constant)
        nan_q = np.isnan(q)
        distinct = [float(x) for x in np.unique(q[~nan_q])] + ([math.nan] if nan_q.any() else [])
        for qv in distinct:
            steps = nan_q if math.isnan(qv) else (q == qv)
            text = openmetrics_float(qv)
            labels += [h.labels.set(label, text) for h in hists]
            parts_v.append(vals)
            parts_m.append(mask & steps[None, :])
    _report_forced(ev, forced, e.args[0])
    if not labels:
        return Block.empty(ev.n)
    return Block(labels, np.concatenate(parts_v), np.concatenate(parts_m)).compact().check_unique()


def histogram_fraction(ev: Evaluator, e: Call) -> Block:
    lower = ev.eval_scalar(e.args[0])
    upper = ev.eval_scalar(e.args[1])
    blk = ev.eval_block(e.args[2])
    hists = classic_histograms(ev, blk, e.args[2])
    n = ev.n
    vals = np.full((len(hists), n), np.nan)
    mask = np.zeros((len(hists), n), np.bool_)
    for ub, segs in _batches(hists, blk):
        cols_all = np.concatenate([cols for _, cols, _ in segs])
        counts = np.concatenate([c for _, _, c in segs], axis=1)
        res = bucket_fraction(lower[cols_all], upper[cols_all], ub, counts)
        off = 0
        for j, cols, _ in segs:
            vals[j, cols] = res[off : off + cols.size]
            mask[j, cols] = True
            off += cols.size
    return Block([h.labels for h in hists], vals, mask).compact().check_unique()
