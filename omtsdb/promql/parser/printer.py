"""Print an AST back as PromQL (Prometheus's ``String()`` form), so that
``parse(format_expr(e)) == e``."""

from __future__ import annotations

from omtsdb.model.exposition.floats import format_go_g
from omtsdb.model.labels import METRIC_NAME, is_legacy_label_name, is_legacy_metric_name, quote
from omtsdb.model.matchers import Matcher, MatchType
from omtsdb.promql.parser.ast import (
    AggregateExpr,
    AtModifier,
    BinaryExpr,
    Call,
    Cardinality,
    DurationExpr,
    Expr,
    MatrixSelector,
    NumberLiteral,
    ParenExpr,
    StringLiteral,
    SubqueryExpr,
    UnaryExpr,
    VectorSelector,
)
from omtsdb.promql.parser.durations import format_duration


def _label(n: str) -> str:
    return n if is_legacy_label_name(n) else quote(n)


def _matcher(m: Matcher) -> str:
    return f"{_label(m.name)}{m.type.value}{quote(m.value)}"


def _number(v: float) -> str:
    if v == float("inf"):
        return "Inf"  # "+Inf" would re-parse as a unary plus
    return format_go_g(v)


def format_duration_expr(d: DurationExpr) -> str:
    if d.op == "num":
        s = format_duration(round(d.value * 1000)) if d.duration else _number(d.value)
    elif d.op in ("step", "range"):
        s = f"{d.op}()"
    elif d.op in ("min_of", "max_of"):
        assert d.lhs is not None and d.rhs is not None
        s = f"{d.op}({format_duration_expr(d.lhs)}, {format_duration_expr(d.rhs)})"
    elif d.lhs is None:
        assert d.rhs is not None
        s = ("-" if d.op == "-" else "") + format_duration_expr(d.rhs)
    else:
        assert d.rhs is not None
        s = f"{format_duration_expr(d.lhs)} {d.op} {format_duration_expr(d.rhs)}"
    return f"({s})" if d.wrapped else s


def _range(range_ms: int, expr: DurationExpr | None) -> str:
    return format_duration_expr(expr) if expr is not None else format_duration(range_ms)


def _modifiers(
    offset_ms: int,
    at_ms: int | None,
    at_mod: AtModifier | None,
    offset_expr: DurationExpr | None = None,
) -> str:
    out = ""
    if at_ms is not None:
        secs = at_ms / 1000
        out += f" @ {secs:.3f}"
    elif at_mod is not None:
        out += f" @ {at_mod.value}()"
    if offset_expr is not None:
        out += f" offset {format_duration_expr(offset_expr)}"
    elif offset_ms > 0:
        out += f" offset {format_duration(offset_ms)}"
    elif offset_ms < 0:
        out += f" offset -{format_duration(-offset_ms)}"
    return out


def _selector(vs: VectorSelector, braces: bool = False) -> str:
    ms = list(vs.matchers)
    name = ""
    if vs.name and is_legacy_metric_name(vs.name) and not braces:
        for i, m in enumerate(ms):
            if m.name == METRIC_NAME and m.type is MatchType.EQ and m.value == vs.name:
                name = vs.name
                del ms[i]
                break
    parts = []
    if vs.name and not name:  # a name that needs quoting goes inside the braces
        for i, m in enumerate(ms):
            if m.name == METRIC_NAME and m.type is MatchType.EQ and m.value == vs.name:
                parts.append(quote(vs.name))
                del ms[i]
                break
    parts += [_matcher(m) for m in ms]
    body = "{" + ", ".join(parts) + "}" if parts or not name else ""
    return name + body


def format_expr(e: Expr) -> str:
    if isinstance(e, NumberLiteral):
        return _number(e.value)
    if isinstance(e, StringLiteral):
        return quote(e.value)
    if isinstance(e, VectorSelector):
        s = _selector(e)
        if e.anchored:
            s += " anchored"
        if e.smoothed:
            s += " smoothed"
        return s + _modifiers(e.offset_ms, e.at_ms, e.at_modifier, e.offset_expr)
    if isinstance(e, MatrixSelector):
        vs = e.vector_selector
        s = f"{_selector(vs)}[{_range(e.range_ms, e.range_expr)}]"
        if vs.anchored:
            s += " anchored"
        if vs.smoothed:
            s += " smoothed"
        return s + _modifiers(vs.offset_ms, vs.at_ms, vs.at_modifier, vs.offset_expr)
    if isinstance(e, SubqueryExpr):
        step = _range(e.step_ms, e.step_expr) if e.step_ms or e.step_expr else ""
        inner = format_expr(e.expr)
        return f"{inner}[{_range(e.range_ms, e.range_expr)}:{step}]" + _modifiers(
            e.offset_ms, e.at_ms, e.at_modifier, e.offset_expr
        )
    if isinstance(e, Call):
        args = [format_expr(a) for a in e.args]
        if e.func == "info" and len(e.args) > 1 and isinstance(e.args[1], VectorSelector):
            args[1] = _selector(e.args[1], braces=True)  # a label selector, never a name
        return f"{e.func}({', '.join(args)})"
    if isinstance(e, ParenExpr):
        return f"({format_expr(e.expr)})"
    if isinstance(e, UnaryExpr):
        return f"{e.op}{format_expr(e.expr)}"
    if isinstance(e, AggregateExpr):
        s = e.op
        if e.without:
            s += f" without ({', '.join(map(_label, e.grouping))}) "
        elif e.grouping or e.by:
            s += f" by ({', '.join(map(_label, e.grouping))}) "
        args = [format_expr(e.param)] if e.param is not None else []
        args.append(format_expr(e.expr))
        return f"{s}({', '.join(args)})"
    if isinstance(e, BinaryExpr):
        mod = ""
        if e.return_bool:
            mod += " bool"
        m = e.matching
        if m is not None:
            if m.on or m.matching_labels:
                kw = "on" if m.on else "ignoring"
                mod += f" {kw} ({', '.join(map(_label, m.matching_labels))})"
            if m.card in (Cardinality.MANY_TO_ONE, Cardinality.ONE_TO_MANY):
                kw = "group_left" if m.card is Cardinality.MANY_TO_ONE else "group_right"
                mod += f" {kw} ({', '.join(map(_label, m.include))})"
            if m.fill_left is not None or m.fill_right is not None:
                if m.fill_left == m.fill_right:
                    mod += f" fill ({_number(m.fill_left)})"  # type: ignore[arg-type]
                else:
                    if m.fill_left is not None:
                        mod += f" fill_left ({_number(m.fill_left)})"
                    if m.fill_right is not None:
                        mod += f" fill_right ({_number(m.fill_right)})"
        return f"{format_expr(e.lhs)} {e.op}{mod} {format_expr(e.rhs)}"
    raise TypeError(f"not an expression: {e!r}")
