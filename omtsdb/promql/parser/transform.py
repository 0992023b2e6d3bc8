"""Lark parse tree -> frozen AST, with Prometheus's parse-time type checks."""

from __future__ import annotations

import dataclasses
import math
from typing import Any, NoReturn

from lark import Token, Transformer, v_args
from lark.tree import Meta

from omtsdb.errors import ParseError
from omtsdb.model.labels import METRIC_NAME
from omtsdb.model.matchers import Matcher, MatchType
from omtsdb.promql.parser import ast
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
    PosRange,
    StringLiteral,
    SubqueryExpr,
    UnaryExpr,
    ValueType,
    VectorMatching,
    VectorSelector,
)
from omtsdb.promql.parser.durations import parse_duration
from omtsdb.promql.parser.durexpr import constant_ms
from omtsdb.promql.parser.functions import AGGREGATIONS, EXPERIMENTAL_AGGREGATIONS, FUNCTIONS
from omtsdb.promql.parser.strings import unquote
from omtsdb.promql.parser.types import expr_type

COMPARISON = frozenset({"==", "!=", "<", "<=", ">", ">="})
SET_OPS = frozenset({"and", "or", "unless"})
_MAX_DURATION_S = 2**63 / 1e9


class SemanticError(Exception):
    def __init__(self, msg: str, pos: PosRange) -> None:
        super().__init__(msg)
        self.msg = msg
        self.pos = pos


def _fail(msg: str, pos: PosRange) -> NoReturn:
    raise SemanticError(msg, pos)


def _pos(meta: Meta) -> PosRange:
    if getattr(meta, "empty", True):
        return ast.NOPOS
    return PosRange(meta.start_pos, meta.end_pos)


def parse_number(text: str) -> float:
    low = text.lower()
    if low in ("inf", "+inf"):
        return math.inf
    if low == "nan":
        return math.nan
    if low.startswith("0x"):
        return float(int(low, 16))
    return float(text.replace("_", ""))


@v_args(meta=True, inline=True)
class ToAST(Transformer[Token, Expr]):
    def __init__(self, text: str, experimental: bool) -> None:
        super().__init__()
        self.text = text
        self.experimental = experimental
        # Selectors whose matchers all match "": an error unless info() takes them as its
        # label selector argument (checked when the whole tree is built, see ``finish``).
        self.empty_selectors: dict[int, VectorSelector] = {}

    def finish(self, e: Expr) -> Expr:
        if self.empty_selectors:
            first = min(self.empty_selectors.values(), key=lambda vs: vs.pos.start)
            _fail("vector selector must contain at least one non-empty matcher", first.pos)
        return e

    def _experimental(self, what: str, pos: PosRange) -> None:
        if not self.experimental:
            _fail(f"{what} is experimental and must be enabled with --enable-feature", pos)

    # -- literals -------------------------------------------------------------------------
    def number(self, meta: Meta, tok: Token) -> NumberLiteral:
        return NumberLiteral(parse_number(str(tok)), _pos(meta))

    def duration_number(self, meta: Meta, tok: Token) -> NumberLiteral:
        return NumberLiteral(parse_duration(str(tok)) / 1000.0, _pos(meta))

    def string(self, meta: Meta, tok: Token) -> str:
        try:
            return unquote(str(tok))
        except ValueError as e:
            _fail(str(e), _pos(meta))

    def string_lit(self, meta: Meta, s: str) -> StringLiteral:
        return StringLiteral(s, _pos(meta))

    def paren(self, meta: Meta, e: Expr) -> ParenExpr:
        return ParenExpr(e, _pos(meta))

    # -- selectors --------------------------------------------------------------------------
    def label_name(self, meta: Meta, x: Any) -> str:
        name = str(x)
        if isinstance(x, Token) and x.type == "IDENTIFIER" and ":" in name:
            _fail(f'unexpected character in label name: "{name}"', _pos(meta))
        return name

    def keyword(self, meta: Meta, tok: Token) -> str:
        return str(tok)

    def label_matcher(self, meta: Meta, name: str, op: Token, value: str) -> Matcher:
        try:
            return Matcher(MatchType(str(op)), name, value)
        except Exception as e:  # invalid regex
            _fail(str(e), _pos(meta))

    def quoted_metric_name(self, meta: Meta, name: str) -> Matcher:
        return Matcher(MatchType.EQ, METRIC_NAME, name)

    def label_matchers(self, meta: Meta, *ms: Matcher | None) -> list[Matcher]:
        return [m for m in ms if m is not None]

    def vector_selector(self, meta: Meta, *parts: Any) -> VectorSelector:
        pos = _pos(meta)
        name = ""
        matchers: list[Matcher] = []
        if parts and isinstance(parts[0], Token):
            name = str(parts[0])
            matchers = list(parts[1] or [])
        elif parts:
            matchers = list(parts[0] or [])
        names_in = [m for m in matchers if m.name == METRIC_NAME and m.type is MatchType.EQ]
        if name:
            if names_in:
                _fail(f'metric name must not be set twice: "{name}" or "{names_in[0].value}"', pos)
            matchers.insert(0, Matcher(MatchType.EQ, METRIC_NAME, name))
        elif len(names_in) == 1 and names_in[0] is matchers[0]:
            name = names_in[0].value
        vs = VectorSelector(name, tuple(matchers), pos=pos)
        if all(m.matches_empty for m in matchers):
            self.empty_selectors[id(vs)] = vs
        return vs

    # -- durations --------------------------------------------------------------------------
    # Every duration is a DurationExpr while parsing; range_dur/offset_dur turn a plain literal
    # into milliseconds and keep anything else as an expression (resolved per query).
    def dur_lit(self, meta: Meta, tok: Token) -> DurationExpr:
        secs = parse_duration(str(tok)) / 1000.0
        return DurationExpr("num", value=secs, duration=True, pos=_pos(meta))

    def dur_num(self, meta: Meta, tok: Token) -> DurationExpr:
        v = parse_number(str(tok))
        if not math.isfinite(v) or abs(v) > _MAX_DURATION_S:
            _fail("duration out of range", _pos(meta))
        return DurationExpr("num", value=v, pos=_pos(meta))

    def dur_binary(self, meta: Meta, a: DurationExpr, op: Token, b: DurationExpr) -> DurationExpr:
        pos = _pos(meta)
        self._experimental("duration expressions", pos)
        o = str(op).lower()
        if o not in ("+", "-", "*", "/", "%", "^"):
            _fail(f"unexpected {o} in duration expression", pos)
        if o in ("/", "%") and b.op == "num" and b.value == 0:
            _fail("division by zero" if o == "/" else "modulo by zero", b.pos)
        return DurationExpr(o, a, b, pos=pos)

    def dur_unary(self, meta: Meta, op: Token, d: DurationExpr) -> DurationExpr:
        pos = _pos(meta)
        neg = str(op) == "-"
        if d.op == "num":  # the sign becomes part of the literal, as in Prometheus
            return dataclasses.replace(d, value=-d.value if neg else d.value, pos=pos)
        return DurationExpr("-", None, d, pos=pos) if neg else d

    def dur_paren(self, meta: Meta, d: DurationExpr) -> DurationExpr:
        self._experimental("duration expressions", _pos(meta))
        return dataclasses.replace(d, wrapped=True, pos=_pos(meta))

    def dur_step(self, meta: Meta, tok: Token) -> DurationExpr:
        self._experimental("duration expressions", _pos(meta))
        return DurationExpr("step", pos=_pos(meta))

    def dur_range(self, meta: Meta, tok: Token) -> DurationExpr:
        self._experimental("duration expressions", _pos(meta))
        return DurationExpr("range", pos=_pos(meta))

    def dur_minmax(self, meta: Meta, tok: Token, a: DurationExpr, b: DurationExpr) -> DurationExpr:
        self._experimental("duration expressions", _pos(meta))
        return DurationExpr(str(tok).lower(), a, b, pos=_pos(meta))

    def range_dur(self, meta: Meta, d: DurationExpr) -> int | DurationExpr:
        if d.op == "num":
            if d.value <= 0:
                _fail("duration must be greater than 0", d.pos)
            return round(d.value * 1000)
        return d

    def offset_dur(self, meta: Meta, sign: Token | None, d: DurationExpr) -> int | DurationExpr:
        if sign is not None:
            d = self.dur_unary(meta, sign, d)
        if d.op == "num":
            return round(d.value * 1000)
        return d

    # -- postfix modifiers -------------------------------------------------------------------
    def matrix(self, meta: Meta, e: Expr, rng: int | DurationExpr) -> MatrixSelector:
        pos = _pos(meta)
        if not isinstance(e, VectorSelector):
            _fail("ranges only allowed for vector selectors", pos)
        if e.offset_ms or e.offset_expr is not None:
            _fail("no offset modifiers allowed before range", pos)
        if e.at_ms is not None or e.at_modifier is not None:
            _fail("no @ modifiers allowed before range", pos)
        if isinstance(rng, DurationExpr):
            return MatrixSelector(e, constant_ms(rng, True), rng, pos=pos)
        return MatrixSelector(e, rng, pos=pos)

    def subquery(
        self, meta: Meta, e: Expr, rng: int | DurationExpr, step: int | DurationExpr | None
    ) -> SubqueryExpr:
        pos = _pos(meta)
        t = expr_type(e)
        if t is not ValueType.VECTOR:
            _fail(f"subquery is only allowed on instant vector, got {t} instead", pos)
        range_expr = rng if isinstance(rng, DurationExpr) else None
        step_expr = step if isinstance(step, DurationExpr) else None
        range_ms = constant_ms(rng, True) if isinstance(rng, DurationExpr) else rng
        step_ms = constant_ms(step, True) if isinstance(step, DurationExpr) else step or 0
        return SubqueryExpr(
            e, range_ms, step_ms, range_expr=range_expr, step_expr=step_expr, pos=pos
        )

    def offset(self, meta: Meta, e: Expr, _kw: Token, d: int | DurationExpr) -> Expr:
        pos = _pos(meta)
        target = e.vector_selector if isinstance(e, MatrixSelector) else e
        if isinstance(target, VectorSelector | SubqueryExpr):
            if target.offset_ms or target.offset_expr is not None:
                _fail("offset may not be set multiple times", pos)
            if isinstance(d, DurationExpr):
                return _replace_target(e, offset_ms=constant_ms(d, False), offset_expr=d, pos=pos)
            return _replace_target(e, offset_ms=d, pos=pos)
        _fail(
            "offset modifier must be preceded by an instant vector selector or range vector "
            "selector or a subquery",
            pos,
        )

    def at_value(self, meta: Meta, *parts: Any) -> tuple[int | None, AtModifier | None]:
        toks = [p for p in parts if p is not None]
        if len(toks) == 1 and toks[0].type == "AT_FN":
            return None, AtModifier(str(toks[0]).lower())
        sign = -1 if len(toks) == 2 and str(toks[0]) == "-" else 1
        last = toks[-1]
        if last.type == "DURATION":
            v = parse_duration(str(last)) / 1000.0 * sign
        else:
            v = parse_number(str(last)) * sign
        if not math.isfinite(v):
            _fail(f"timestamp out of bounds for @ modifier: {v}", _pos(meta))
        return round(v * 1000), None

    def at(
        self, meta: Meta, e: Expr, _tok: Token, val: tuple[int | None, AtModifier | None]
    ) -> Expr:
        pos = _pos(meta)
        target = e.vector_selector if isinstance(e, MatrixSelector) else e
        if isinstance(target, VectorSelector | SubqueryExpr):
            if target.at_ms is not None or target.at_modifier is not None:
                _fail("@ <timestamp> may not be set multiple times", pos)
            return _replace_target(e, at_ms=val[0], at_modifier=val[1], pos=pos)
        _fail(
            "@ modifier must be preceded by an instant vector selector or range vector "
            "selector or a subquery",
            pos,
        )

    def anchored(self, meta: Meta, e: Expr, _tok: Token) -> Expr:
        return self._range_mod(meta, e, "anchored")

    def smoothed(self, meta: Meta, e: Expr, _tok: Token) -> Expr:
        return self._range_mod(meta, e, "smoothed")

    def _range_mod(self, meta: Meta, e: Expr, which: str) -> Expr:
        pos = _pos(meta)
        self._experimental(f"the {which} modifier", pos)
        target = e.vector_selector if isinstance(e, MatrixSelector) else e
        if not isinstance(target, VectorSelector):
            _fail(f"{which} modifier can only be used on vector selectors", pos)
        return _replace_target(e, pos=pos, **{which: True})

    # -- operators --------------------------------------------------------------------------
    def label_list(self, meta: Meta, *names: str | None) -> tuple[str, ...]:
        return tuple(n for n in names if n is not None)

    def group_mod(
        self, meta: Meta, kw: Token, labels: tuple[str, ...] | None
    ) -> tuple[str, tuple[str, ...]]:
        return str(kw).lower(), labels or ()

    def signed_number(self, meta: Meta, sign: Token | None, num: Token) -> float:
        v = parse_number(str(num))
        return -v if sign is not None and str(sign) == "-" else v

    def fill_mod(self, meta: Meta, *parts: Any) -> tuple[float | None, float | None]:
        self._experimental("fill modifiers", _pos(meta))
        left = right = None
        items = [p for p in parts if p is not None]
        for kw, val in zip(items[0::2], items[1::2], strict=True):
            k = str(kw).lower()
            if k == "fill":
                left = right = val
            elif k == "fill_left":
                left = val
            else:
                right = val
        return left, right

    def matching(self, meta: Meta, *parts: Any) -> dict[str, Any]:
        out: dict[str, Any] = {
            "on": False,
            "labels": (),
            "group": None,
            "fill": (None, None),
            "has_on": False,
        }
        items = list(parts)
        if items and isinstance(items[0], Token):
            out["on"] = str(items[0]).lower() == "on"
            out["has_on"] = True
            out["labels"] = items[1]
            out["group"] = items[2]
            out["fill"] = items[3] or (None, None)
        elif items:
            out["fill"] = items[0]
        return out

    def bin_mod(
        self, meta: Meta, bool_tok: Token | None, matching: dict[str, Any] | None
    ) -> dict[str, Any]:
        return {"bool": bool_tok is not None, "matching": matching}

    def binary(
        self, meta: Meta, lhs: Expr, op_tok: Token, mod: dict[str, Any], rhs: Expr
    ) -> BinaryExpr:
        pos = _pos(meta)
        op = str(op_tok).lower()
        lt, rt = expr_type(lhs), expr_type(rhs)
        return_bool = bool(mod["bool"])
        m = mod["matching"]
        for t in (lt, rt):
            if t not in (ValueType.SCALAR, ValueType.VECTOR):
                _fail("binary expression must contain only scalar and instant vector types", pos)
        if return_bool and op not in COMPARISON:
            _fail("bool modifier can only be used on comparison operators", pos)
        if (
            op in COMPARISON
            and lt is ValueType.SCALAR
            and rt is ValueType.SCALAR
            and not return_bool
        ):
            _fail("comparisons between scalars must use BOOL modifier", pos)
        both_vec = lt is ValueType.VECTOR and rt is ValueType.VECTOR
        if op in SET_OPS and not both_vec:
            _fail(f'set operator "{op}" not allowed in binary scalar expression', pos)
        matching: VectorMatching | None = None
        if m is not None and not both_vec and (m["has_on"] or m["group"] is not None):
            _fail("vector matching only allowed between instant vectors", pos)
        if both_vec:
            card = Cardinality.MANY_TO_MANY if op in SET_OPS else Cardinality.ONE_TO_ONE
            on, labels, include = False, (), ()
            fill_l = fill_r = None
            if m is not None:
                on, labels = m["on"], m["labels"]
                fill_l, fill_r = m["fill"]
                if m["group"] is not None:
                    kind, include = m["group"]
                    if op in SET_OPS:
                        _fail(f'no grouping allowed for "{op}" operation', pos)
                    card = (
                        Cardinality.MANY_TO_ONE if kind == "group_left" else Cardinality.ONE_TO_MANY
                    )
                    if on:
                        for name in include:
                            if name in labels:
                                _fail(
                                    f'label "{name}" must not occur in ON and GROUP clause at once',
                                    pos,
                                )
            matching = VectorMatching(card, tuple(labels), on, tuple(include), fill_l, fill_r)
        return BinaryExpr(op, lhs, rhs, matching, return_bool, pos)

    def unary(self, meta: Meta, op: Token, e: Expr) -> Expr:
        pos = _pos(meta)
        t = expr_type(e)
        if t not in (ValueType.SCALAR, ValueType.VECTOR):
            _fail(
                "unary expression only allowed on expressions of type scalar or instant vector", pos
            )
        return UnaryExpr(str(op), e, pos)

    # -- calls and aggregations ----------------------------------------------------------------
    def args(self, meta: Meta, *xs: Expr | None) -> list[Expr]:
        return [x for x in xs if x is not None]

    def call(self, meta: Meta, name_tok: Token, args: list[Expr] | None) -> Call:
        pos = _pos(meta)
        name = str(name_tok)
        fn = FUNCTIONS.get(name)
        if fn is None:
            _fail(f'unknown function with name "{name}"', pos)
        if fn.experimental and not self.experimental:
            _fail(f'function "{name}" is not enabled', pos)
        args = args or []
        n, want = len(args), len(fn.arg_types)
        if fn.variadic == 0 and n != want:
            _fail(f'expected {want} argument(s) in call to "{name}", got {n}', pos)
        if fn.variadic != 0 and n < want - 1:
            _fail(f'expected at least {want - 1} argument(s) in call to "{name}", got {n}', pos)
        if fn.variadic > 0 and n > want - 1 + fn.variadic:
            _fail(
                f'expected at most {want - 1 + fn.variadic} argument(s) in call to "{name}", '
                f"got {n}",
                pos,
            )
        if name == "info" and len(args) > 1:
            sel = args[1]
            braced = isinstance(sel, VectorSelector) and self.text[
                sel.pos.start : sel.pos.end
            ].startswith("{")
            if isinstance(sel, VectorSelector) and not braced:
                _fail("expected label selectors only, got vector selector instead", sel.pos)
            if not isinstance(sel, VectorSelector):
                _fail("expected label selectors only", sel.pos)
            self.empty_selectors.pop(id(sel), None)
        for i, a in enumerate(args):
            expect = fn.arg_types[min(i, want - 1)]
            got = expr_type(a)
            if got is not expect:
                _fail(f'expected type {expect} in call to function "{name}", got {got}', a.pos)
        return Call(name, tuple(args), pos)

    def grouping(
        self, meta: Meta, kw: Token, labels: tuple[str, ...]
    ) -> tuple[bool, tuple[str, ...]]:
        return str(kw).lower() == "without", labels

    def aggregation(self, meta: Meta, op_tok: Token, *parts: Any) -> AggregateExpr:
        pos = _pos(meta)
        op = str(op_tok).lower()
        if op in EXPERIMENTAL_AGGREGATIONS and not self.experimental:
            _fail(
                "limitk() and limit_ratio() are experimental and must be enabled with "
                "--enable-feature=promql-experimental-functions",
                pos,
            )
        grouping = None
        args: list[Expr] = []
        for p in parts:
            if isinstance(p, tuple):
                grouping = p
            elif isinstance(p, list):
                args = p
        param_type = AGGREGATIONS[op]
        want = 2 if param_type is not None else 1
        if len(args) != want:
            _fail(
                f"wrong number of arguments for aggregate expression provided, expected "
                f"{want}, got {len(args)}",
                pos,
            )
        body = args[-1]
        param = args[0] if want == 2 else None
        bt = expr_type(body)
        if bt is not ValueType.VECTOR:
            _fail(f"expected type instant vector in aggregation expression, got {bt}", body.pos)
        if param is not None and param_type is not None and expr_type(param) is not param_type:
            _fail(
                f"expected type {param_type} in aggregation parameter, got {expr_type(param)}",
                param.pos,
            )
        without, labels = grouping if grouping is not None else (False, ())
        return AggregateExpr(
            op, body, param, labels, without, by=grouping is not None and not without, pos=pos
        )


def _replace_target(e: Expr, pos: PosRange, **kw: Any) -> Expr:
    import dataclasses

    if isinstance(e, MatrixSelector):
        return dataclasses.replace(
            e, vector_selector=dataclasses.replace(e.vector_selector, **kw), pos=pos
        )
    return dataclasses.replace(e, pos=pos, **kw)


def semantic_to_parse_error(text: str, e: SemanticError) -> ParseError:
    start = e.pos.start
    line = text.count("\n", 0, start) + 1
    col = start - (text.rfind("\n", 0, start) + 1) + 1
    return ParseError(
        f"{line}:{col}: parse error: {e.msg}", line=line, column=col, start=start, end=e.pos.end
    )
