"""Function calls: dispatch to rollups, element-wise kernels and the label/histogram functions."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from omtsdb.errors import ExecutionError
from omtsdb.model.labels import METRIC_NAME, Labels, as_valid_utf8, is_valid_label_name
from omtsdb.model.matchers import compile_anchored
from omtsdb.model.samples import F64
from omtsdb.promql.engine import annotate as anno
from omtsdb.promql.engine import histcalls
from omtsdb.promql.engine.block import Block, BoolArr
from omtsdb.promql.functions.instant import ELEMENTWISE, clamp, round_to
from omtsdb.promql.functions.natsort import natural_key
from omtsdb.promql.functions.rollups import ROLLUPS
from omtsdb.promql.parser.ast import Call, Expr, ParenExpr, StringLiteral, VectorSelector

if TYPE_CHECKING:
    from omtsdb.promql.engine.evaluator import Context, Evaluator, Value

KEEP_NAME = frozenset({"last_over_time", "first_over_time"})
COUNTER_FUNCS = frozenset({"rate", "increase", "irate", "resets"})
# start(), end(), range() and step() (experimental): the query's own parameters, in seconds
_QUERY_CONTEXT = frozenset({"start", "end", "range", "step"})


def _drop(blk: Block) -> Block:
    """Mark every series' name for dropping (see ``Block.apply_drop``)."""
    return blk.mark_drop()


def _strip(e: Expr) -> Expr:
    while isinstance(e, ParenExpr):
        e = e.expr
    return e


def _string(e: Expr) -> str:
    e = _strip(e)
    if not isinstance(e, StringLiteral):
        raise ExecutionError("expected a string literal")
    return e.value


def call_function(ev: Evaluator, e: Call) -> Value:
    name = e.func
    args = e.args
    n = ev.n
    if name in ROLLUPS:
        if name == "quantile_over_time":
            q = ev.eval_scalar(args[0])
            blk = ev.rollup(name, args[1], (q,))
            if len(blk) and bool((np.isnan(q) | (q < 0) | (q > 1)).any()):
                bad = q[np.isnan(q) | (q < 0) | (q > 1)]
                anno.invalid_quantile(ev.ctx, float(bad[0]), args[0].pos)
        elif name == "predict_linear":
            at = (ev.eval_scalar(args[1]), ev.times.astype(np.float64))
            blk = ev.rollup(name, args[0], at)
        else:
            extra = tuple(ev.eval_scalar(a) for a in args[1:])
            blk = ev.rollup(name, args[0], extra)
        if name in COUNTER_FUNCS:
            _counter_info(ev, args[0], name)
        return blk if name in KEEP_NAME else _drop(blk).check_unique()
    if name in ("absent_over_time", "absent"):
        from omtsdb.promql.engine.evaluator import absent_labels

        if name == "absent":
            inner = ev.eval_block(args[0])
        else:
            inner = ev.rollup("count_over_time", args[0], ())
        any_present = np.asarray(inner.mask.any(axis=0) if len(inner) else np.zeros(n, np.bool_))
        return Block([absent_labels(args[0])], np.ones((1, n)), ~any_present[None, :]).compact()
    if name in ELEMENTWISE:
        if (
            name
            in (
                "year",
                "month",
                "day_of_month",
                "day_of_week",
                "day_of_year",
                "days_in_month",
                "hour",
                "minute",
            )
            and not args
        ):
            return Block(
                [Labels()], ELEMENTWISE[name](ev.times[None, :] / 1000.0), np.ones((1, n), np.bool_)
            )
        blk = ev.eval_block(args[0])
        return _drop(Block(blk.labels, ELEMENTWISE[name](blk.vals), blk.mask)).check_unique()
    if name == "timestamp":
        a = _strip(args[0])
        if isinstance(a, VectorSelector):
            blk = ev.instant_selector(a, want_ts=True)
        else:
            inner = ev.eval_block(a)
            blk = Block(
                inner.labels,
                np.broadcast_to(ev.times / 1000.0, inner.vals.shape).copy(),
                inner.mask,
            )
        return _drop(blk).check_unique()
    if name == "start_timestamp":
        # Only straight on a selector (not in parentheses, not on an expression: start
        # timestamps do not survive those) and only when the engine uses them.
        if isinstance(args[0], VectorSelector) and ev.ctx.use_start_timestamps:
            return _drop(ev.instant_selector(args[0], want_st=True)).check_unique()
        ev.eval_block(args[0])
        return Block.empty(n)
    if name in ("clamp", "clamp_min", "clamp_max"):
        blk = ev.eval_block(args[0])
        if name == "clamp":
            lo, hi = ev.eval_scalar(args[1]), ev.eval_scalar(args[2])
            vals = clamp(blk.vals, lo[None, :], hi[None, :])
            empty = lo > hi
            mask = blk.mask & ~empty[None, :]
        else:
            b = ev.eval_scalar(args[1])[None, :]
            with np.errstate(all="ignore"):
                vals = np.maximum(blk.vals, b) if name == "clamp_min" else np.minimum(blk.vals, b)
            vals = np.where(np.isnan(b) | np.isnan(blk.vals), np.nan, vals)
            mask = blk.mask
        return _drop(Block(blk.labels, vals, mask)).compact().check_unique()
    if name == "round":
        blk = ev.eval_block(args[0])
        to = ev.eval_scalar(args[1]) if len(args) > 1 else np.ones(n)
        return _drop(Block(blk.labels, round_to(blk.vals, to[None, :]), blk.mask)).check_unique()
    if name == "scalar":
        blk = ev.eval_block(args[0])
        cnt = blk.mask.sum(axis=0) if len(blk) else np.zeros(n)
        out = np.full(n, np.nan)
        one = cnt == 1
        if one.any():
            row = np.argmax(blk.mask, axis=0)
            out[one] = blk.vals[row[one], np.flatnonzero(one)]
        return out
    if name == "vector":
        s = ev.eval_scalar(args[0])
        return Block([Labels()], s[None, :].copy(), np.ones((1, n), np.bool_))
    if name == "time":
        out_t: F64 = ev.times / 1000.0
        return out_t
    if name == "pi":
        return np.full(n, np.pi)
    if name in _QUERY_CONTEXT:
        return np.full(n, _query_param(ev.ctx, name) / 1000.0)
    if name in ("min_of", "max_of"):
        x, y = ev.eval_scalar(args[0]), ev.eval_scalar(args[1])
        out_m: F64 = np.minimum(x, y) if name == "min_of" else np.maximum(x, y)
        return out_m
    if name in ("sort", "sort_desc", "sort_by_label", "sort_by_label_desc"):
        blk = ev.eval_block(args[0])
        if ev.n > 1 or ev.ctx.start != ev.ctx.end:
            msg = "sort is ineffective for range queries since results are always ordered by labels"
            anno.warn(ev.ctx, msg, e.pos)
        return _sorted(blk, name, [_string(a) for a in args[1:]])
    if name == "label_replace":
        blk = ev.eval_block(args[0])
        dst, repl, src, rx = (_string(a) for a in args[1:5])
        return label_replace(blk, dst, repl, src, rx)
    if name == "label_join":
        blk = ev.eval_block(args[0])
        dst, sep = _string(args[1]), _string(args[2])
        srcs = [_string(a) for a in args[3:]]
        if not is_valid_label_name(dst):
            raise ExecutionError(f"invalid destination label name in label_join(): {dst}")
        labels = [
            lb.set(dst, as_valid_utf8(sep.join(lb.get(s) for s in srcs))) for lb in blk.labels
        ]
        return Block(labels, blk.vals, blk.mask, drop=_kept_drop(blk, dst)).check_unique()
    if name == "info":
        from omtsdb.promql.engine.info import eval_info

        return eval_info(ev, e)
    if name == "histogram_quantile":
        return histcalls.histogram_quantile(ev, e)
    if name == "histogram_quantiles":
        return histcalls.histogram_quantiles(ev, e)
    if name == "histogram_fraction":
        return histcalls.histogram_fraction(ev, e)
    raise ExecutionError(f"function {name}() is not supported")


def _query_param(ctx: Context, name: str) -> int:
    start: int = ctx.start
    end: int = ctx.end
    if name == "start":
        return start
    if name == "end":
        return end
    if name == "range":
        return end - start
    step: int = ctx.step
    return step


def _counter_info(ev: Evaluator, arg: Expr, fn: str) -> None:
    a = _strip(arg)
    from omtsdb.promql.parser.ast import MatrixSelector

    if isinstance(a, MatrixSelector):
        name = a.vector_selector.name
        if name and not name.endswith(("_total", "_sum", "_count", "_bucket")):
            msg = (
                f"PromQL info: metric might not be a counter, name does not end in "
                f'_total/_sum/_count/_bucket: "{name}"'
            )
            if msg not in ev.ctx.infos:
                ev.ctx.infos.append(msg)


def _sorted(blk: Block, name: str, label_args: list[str]) -> Block:
    blk = blk.compact()
    if name in ("sort", "sort_desc"):
        v = blk.vals[:, 0] if blk.nsteps else np.zeros(len(blk))
        nan = np.isnan(v)
        key = np.where(nan, 0.0, v)
        order = np.lexsort((-key if name == "sort_desc" else key, nan)).tolist()
        out = Block([blk.labels[i] for i in order], blk.vals[order], blk.mask[order])
        out.drop = blk.drop[order] if blk.drop is not None else None
        out.sort_order = list(range(len(order)))
        return out
    keys = [(*(natural_key(lb.get(n)) for n in label_args), lb.sort_key()) for lb in blk.labels]
    order = sorted(range(len(keys)), key=lambda i: keys[i], reverse=name.endswith("_desc"))
    out = Block([blk.labels[i] for i in order], blk.vals[order], blk.mask[order])
    out.drop = blk.drop[order] if blk.drop is not None else None
    out.sort_order = list(range(len(order)))
    return out


def label_replace(blk: Block, dst: str, repl: str, src: str, rx: str) -> Block:
    try:
        pred = compile_anchored(rx)
    except Exception:
        raise ExecutionError(f"invalid regular expression in label_replace(): {rx}") from None
    del pred
    if not is_valid_label_name(dst):
        raise ExecutionError(f"invalid destination label name in label_replace(): {dst}")
    import re2

    opts = re2.Options()
    opts.dot_nl = True
    compiled = re2.compile("^(?:" + rx + ")$", options=opts)
    labels = []
    drop = None if blk.drop is None else blk.drop.copy()
    for i, lb in enumerate(blk.labels):
        m = compiled.match(lb.get(src))
        if m is None:
            labels.append(lb)
            continue
        val = as_valid_utf8(_expand(repl, m))
        labels.append(lb.set(dst, val) if val else lb.without(dst))
        if drop is not None and dst == METRIC_NAME:
            drop[i] = False  # the name was written: keep it (delayed name removal)
    return Block(labels, blk.vals, blk.mask, drop=drop).check_unique()


def _kept_drop(blk: Block, dst: str) -> BoolArr | None:
    """Writing ``__name__`` with a label function keeps the name (delayed name removal)."""
    return None if dst == METRIC_NAME else blk.drop


def _expand(template: str, m: object) -> str:
    """Go's ``regexp.Expand``: ``$1``, ``${1}``, ``$name``, ``${name}``, ``$$``."""
    import re

    groups = m.groups()  # type: ignore[attr-defined]
    named = m.groupdict()  # type: ignore[attr-defined]

    def sub(mo: re.Match[str]) -> str:
        tok = mo.group(1) or mo.group(2)
        if tok == "$":
            return "$"
        if tok.isdigit():
            i = int(tok)
            if i == 0:
                return m.group(0)  # type: ignore[attr-defined,no-any-return]
            return (groups[i - 1] or "") if i <= len(groups) else ""
        return named.get(tok) or ""

    return re.sub(r"\$(?:\{([A-Za-z0-9_]+)\}|([A-Za-z0-9_]+|\$))", sub, template)
