"""Duration expressions (``foo[5m + step()]``, ``offset (1h / 2)``): evaluation and the query-time
pass that fills ``range_ms``/``step_ms``/``offset_ms`` from them.

Values are float seconds, as in Prometheus; the result is truncated to whole milliseconds.
``step()`` is the query's resolution (0 for an instant query) and ``range()`` its end minus start.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, get_args

from omtsdb.errors import BadDataError
from omtsdb.promql.parser.ast import (
    DurationExpr,
    Expr,
    MatrixSelector,
    SubqueryExpr,
    VectorSelector,
)

_MAX_SECONDS = 2**63 / 1e9  # what fits a Go time.Duration
_NODES: tuple[type, ...] = get_args(Expr)


class DurationEvalError(Exception):
    """A duration expression that has no value (division by zero, NaN, out of range)."""


def uses_query_context(d: DurationExpr) -> bool:
    if d.op in ("step", "range"):
        return True
    return any(x is not None and uses_query_context(x) for x in (d.lhs, d.rhs))


def evaluate(d: DurationExpr, step_ms: int = 0, range_ms: int = 0) -> float:
    """Seconds. Raises DurationEvalError."""
    op = d.op
    if op == "num":
        return d.value
    if op == "step":
        return step_ms / 1000.0
    if op == "range":
        return range_ms / 1000.0
    rhs = evaluate(d.rhs, step_ms, range_ms) if d.rhs is not None else 0.0
    if d.lhs is None:  # unary
        return -rhs if op == "-" else rhs
    lhs = evaluate(d.lhs, step_ms, range_ms)
    if op == "+":
        return lhs + rhs
    if op == "-":
        return lhs - rhs
    if op == "*":
        return lhs * rhs
    if op == "/":
        if rhs == 0:
            raise DurationEvalError("division by zero")
        return lhs / rhs
    if op == "%":
        if rhs == 0:
            raise DurationEvalError("modulo by zero")
        return math.fmod(lhs, rhs)
    if op == "^":
        try:
            return math.pow(lhs, rhs)
        except (OverflowError, ValueError):
            return math.inf if lhs > 0 else math.nan
    if op == "min_of":
        return min(lhs, rhs)
    if op == "max_of":
        return max(lhs, rhs)
    raise DurationEvalError(f"unexpected duration expression operator {op!r}")


def to_ms(d: DurationExpr, positive: bool, step_ms: int = 0, range_ms: int = 0) -> int:
    """The expression's value in milliseconds. Raises DurationEvalError."""
    v = evaluate(d, step_ms, range_ms)
    if math.isnan(v) or math.isinf(v):
        raise DurationEvalError("duration is NaN or infinite")
    if positive and v <= 0:
        raise DurationEvalError("duration must be greater than 0")
    if not -_MAX_SECONDS <= v <= _MAX_SECONDS:
        raise DurationEvalError("duration is out of range")
    return int(v * 1000)  # truncation, as Prometheus converts


def constant_ms(d: DurationExpr, positive: bool) -> int:
    """Parse-time value of an expression without step()/range(); 0 when it has none yet."""
    if uses_query_context(d):
        return 0
    try:
        return to_ms(d, positive)
    except DurationEvalError:
        return 0


def has_duration_exprs(e: Any) -> bool:
    if isinstance(e, VectorSelector):
        return e.offset_expr is not None
    if isinstance(e, MatrixSelector):
        return e.range_expr is not None or has_duration_exprs(e.vector_selector)
    if isinstance(e, SubqueryExpr) and (
        e.range_expr is not None or e.step_expr is not None or e.offset_expr is not None
    ):
        return True
    return any(has_duration_exprs(c) for c in _children(e))


def _is_node(x: Any) -> bool:
    return isinstance(x, _NODES)


def _children(e: Any) -> list[Any]:
    out: list[Any] = []
    if not _is_node(e):
        return out
    for f in dataclasses.fields(e):
        v = getattr(e, f.name)
        if isinstance(v, tuple):
            out.extend(x for x in v if _is_node(x))
        elif _is_node(v):
            out.append(v)
    return out


def _value(d: DurationExpr, positive: bool, step_ms: int, range_ms: int) -> int:
    try:
        return to_ms(d, positive, step_ms, range_ms)
    except DurationEvalError as err:
        raise BadDataError(f"{d.pos.start}:{d.pos.end}: {err}") from None


def resolve(e: Expr, step_ms: int, range_ms: int) -> Expr:
    """``e`` with every duration expression replaced by its value for this query."""
    if not has_duration_exprs(e):
        return e
    return _resolve(e, step_ms, range_ms)  # type: ignore[no-any-return]


def _resolve(e: Any, step_ms: int, range_ms: int) -> Any:
    if not _is_node(e):
        return e
    kw: dict[str, Any] = {}
    for f in dataclasses.fields(e):
        v = getattr(e, f.name)
        if isinstance(v, DurationExpr):
            positive = f.name != "offset_expr"
            target = {"offset_expr": "offset_ms", "range_expr": "range_ms", "step_expr": "step_ms"}
            kw[target[f.name]] = _value(v, positive, step_ms, range_ms)
            kw[f.name] = None
        elif isinstance(v, tuple) and any(_is_node(x) for x in v):
            kw[f.name] = tuple(_resolve(x, step_ms, range_ms) for x in v)
        elif _is_node(v):
            kw[f.name] = _resolve(v, step_ms, range_ms)
    return dataclasses.replace(e, **kw)
