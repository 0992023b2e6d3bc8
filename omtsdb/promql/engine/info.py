"""``info(v [, {data label selector}])`` (experimental): enrich series with the data labels of
info metrics (``target_info`` by default) that share their identifying labels
(``instance``, ``job``), step by step, as Prometheus's ``promql/info.go`` does."""

from __future__ import annotations

import numpy as np

from omtsdb.errors import ExecutionError
from omtsdb.model.labels import METRIC_NAME, Labels
from omtsdb.model.matchers import Matcher, MatchType
from omtsdb.model.samples import I64
from omtsdb.promql.engine.block import Block
from omtsdb.promql.engine.evaluator import Evaluator
from omtsdb.promql.parser.ast import (
    AggregateExpr,
    AtModifier,
    BinaryExpr,
    Call,
    Expr,
    MatrixSelector,
    ParenExpr,
    SubqueryExpr,
    UnaryExpr,
    VectorSelector,
)

IDENTIFYING = ("instance", "job")
TARGET_INFO = "target_info"
_REGEX_META = set("\\.+*?()|[]{}^$")


def _quote_meta(s: str) -> str:
    return "".join("\\" + c if c in _REGEX_META else c for c in s)


def _effective_name_matchers(ms: list[Matcher]) -> list[Matcher]:
    """Which ``__name__`` matchers select info series: positive ones as given; only negative
    ones get a ``.+_info`` matcher in front; none means ``target_info``."""
    if any(m.type in (MatchType.EQ, MatchType.RE) for m in ms):
        return ms
    if ms:
        return [Matcher(MatchType.RE, METRIC_NAME, ".+_info"), *ms]
    return [Matcher(MatchType.EQ, METRIC_NAME, TARGET_INFO)]


def _signature(name: str, lb: Labels) -> tuple[str, ...]:
    return (name, *(f"{n}={lb.get(n)}" for n in IDENTIFYING if lb.get(n)))


def eval_info(ev: Evaluator, e: Call) -> Block:
    base = ev.eval_block(e.args[0])
    data: dict[str, list[Matcher]] = {}
    name_ms: list[Matcher] = []
    if len(e.args) > 1:
        sel = e.args[1]
        while isinstance(sel, ParenExpr):
            sel = sel.expr
        assert isinstance(sel, VectorSelector)
        for m in sel.matchers:
            data.setdefault(m.name, []).append(m)
            if m.name == METRIC_NAME:
                name_ms.append(m)
    data.pop(METRIC_NAME, None)  # it picks info metrics; it is no data label matcher
    eff = _effective_name_matchers(name_ms)
    ignore = [all(m.matches(lb.get(METRIC_NAME)) for m in eff) for lb in base.labels]
    id_vals: dict[str, set[str]] = {}
    for lb, ig in zip(base.labels, ignore, strict=True):
        if not ig:
            for n in IDENTIFYING:
                if v := lb.get(n):
                    id_vals.setdefault(n, set()).add(v)
    info = Block.empty(ev.n)
    if id_vals:
        ms = [
            Matcher(MatchType.RE, n, "|".join(_quote_meta(v) for v in sorted(vals)))
            for n, vals in id_vals.items()
        ]
        ms += [m for lst in data.values() for m in lst]
        ms += eff
        at = Evaluator(ev.ctx, _reference_times(ev, e.args[0]))
        info = at.instant_selector(VectorSelector("", tuple(ms)), want_ts=True)
    return _combine(ev, base, info, ignore, data)


def _reference_times(ev: Evaluator, e: Expr) -> I64:
    """When info series are looked up, per step: as of the times the first selector of the
    argument reads, through the ``@`` and ``offset`` of the subqueries on the way to it."""
    t = ev.times
    while True:
        if isinstance(e, MatrixSelector):
            e = e.vector_selector
        if isinstance(e, VectorSelector | SubqueryExpr):
            if e.at_ms is not None:
                t = np.full(t.size, e.at_ms, np.int64)
            elif e.at_modifier is AtModifier.START:
                t = np.full(t.size, ev.ctx.start, np.int64)
            elif e.at_modifier is AtModifier.END:
                t = np.full(t.size, ev.ctx.end, np.int64)
            t = t - e.offset_ms
            if isinstance(e, VectorSelector):
                return t
            e = e.expr
            continue
        kids = _children(e)
        if not kids:
            return t
        e = kids[0]


def _children(e: Expr) -> list[Expr]:
    if isinstance(e, Call):
        return [a for a in e.args if _has_selector(a)]
    if isinstance(e, AggregateExpr):
        return [x for x in (e.param, e.expr) if x is not None and _has_selector(x)]
    if isinstance(e, BinaryExpr):
        return [x for x in (e.lhs, e.rhs) if _has_selector(x)]
    if isinstance(e, UnaryExpr | ParenExpr):
        return [e.expr]
    return []


def _has_selector(e: Expr) -> bool:
    if isinstance(e, VectorSelector | MatrixSelector):
        return True
    if isinstance(e, SubqueryExpr):
        return _has_selector(e.expr)
    return any(_has_selector(k) for k in _children(e))


def _combine(
    ev: Evaluator, base: Block, info: Block, ignore: list[bool], data: dict[str, list[Matcher]]
) -> Block:
    info_names = sorted({lb.get(METRIC_NAME) for lb in info.labels})
    info_sigs = [_signature(lb.get(METRIC_NAME), lb) for lb in info.labels]
    base_sigs = [[_signature(n, lb) for n in info_names] for lb in base.labels]
    drop_unmatched = any(not m.matches("") for lst in data.values() for m in lst)
    rows: dict[Labels, int] = {}
    out_labels: list[Labels] = []
    out_vals: list[np.ndarray] = []
    out_mask: list[np.ndarray] = []
    out_drop: list[bool] = []
    for t in range(ev.n):
        by_sig: dict[tuple[str, ...], int] = {}
        for j in np.flatnonzero(info.mask[:, t]).tolist():
            sig = info_sigs[j]
            k = by_sig.get(sig)
            if k is None or info.vals[k, t] < info.vals[j, t]:
                by_sig[sig] = j
            elif info.vals[k, t] == info.vals[j, t]:
                raise ExecutionError(
                    f"found duplicate series for info metric: existing {info.labels[k]} @ "
                    f"{round(info.vals[k, t] * 1000)}, new {info.labels[j]} @ "
                    f"{round(info.vals[j, t] * 1000)}"
                )
        for i in np.flatnonzero(base.mask[:, t]).tolist():
            lb = base.labels[i]
            if not ignore[i]:
                got = _enrich(lb, [by_sig.get(s) for s in base_sigs[i]], info, data)
                if got is None:
                    if drop_unmatched:
                        continue
                else:
                    lb = got
            r = rows.get(lb)
            if r is None:
                r = rows[lb] = len(out_labels)
                out_labels.append(lb)
                out_vals.append(np.zeros(ev.n))
                out_mask.append(np.zeros(ev.n, np.bool_))
                out_drop.append(base.drop is not None and bool(base.drop[i]))
            elif out_mask[r][t]:
                raise ExecutionError("vector cannot contain metrics with the same labelset")
            out_vals[r][t] = base.vals[i, t]
            out_mask[r][t] = True
    n = len(out_labels)
    return Block(
        out_labels,
        np.array(out_vals).reshape(n, ev.n),
        np.array(out_mask).reshape(n, ev.n),
        drop=np.array(out_drop, np.bool_) if base.drop is not None else None,
    )


def _enrich(
    lb: Labels, matches: list[int | None], info: Block, data: dict[str, list[Matcher]]
) -> Labels | None:
    """``lb`` with the data labels of the matching info series; None when none matched."""
    added: dict[str, str] = {}
    seen = False
    for j in matches:
        if j is None:
            continue
        seen = True
        for name, value in info.labels[j]:
            if name == METRIC_NAME or (data and name not in data):
                continue
            have = added.get(name)
            if have is not None and have != value:
                raise ExecutionError(f"conflicting label: {name}")
            if lb.get(name):
                continue
            added[name] = value
    if not seen:
        return None
    return lb.with_pairs(added.items()) if added else lb
