"""Duration expressions: parsing, printing round trips, evaluation per query."""

from __future__ import annotations

import pytest

from omtsdb.errors import BadDataError, ParseError
from omtsdb.promql.parser import format_expr, parse
from omtsdb.promql.parser.ast import BinaryExpr, MatrixSelector, SubqueryExpr, VectorSelector
from omtsdb.promql.parser.durexpr import resolve

ROUND_TRIP = [
    "foo[5m + 1m]",
    "foo[-5m + 35m]",
    "foo[2m * (10 + 5)]",
    "foo[30m1s - 30m1s % 1m]",
    "foo[step()]",
    "foo[min_of(step() + 1, 1h)]",
    "foo offset (1h / 2)",
    "foo offset -(2 ^ 2)",
    "foo offset -step()",
    "foo offset max_of(3s, min_of(step(), 1s))",
    "foo[1m:step() * 2] offset range()",
    "sum_over_time(foo[(5m)])",
    "foo[2 ^ -1]",
    "foo @ 100s",
]


@pytest.mark.parametrize("q", ROUND_TRIP)
def test_round_trip(q: str) -> None:
    e = parse(q, experimental=True)
    assert parse(format_expr(e), experimental=True) == e


def test_offset_takes_one_operand() -> None:
    e = parse("foo offset 100 + 2", experimental=True)
    assert isinstance(e, BinaryExpr) and e.op == "+"
    assert isinstance(e.lhs, VectorSelector) and e.lhs.offset_ms == 100_000
    e = parse("foo offset -2 ^ 2", experimental=True)
    assert isinstance(e, BinaryExpr) and e.op == "^"
    assert isinstance(e.lhs, VectorSelector) and e.lhs.offset_ms == -2000
    e = parse("foo offset (-2 ^ 2)", experimental=True)
    assert isinstance(e, VectorSelector) and e.offset_ms == -4000


def test_constants_fold_and_literals_stay_plain() -> None:
    e = parse("foo[1h/2]", experimental=True)
    assert isinstance(e, MatrixSelector) and e.range_ms == 1_800_000 and e.range_expr is not None
    e = parse("foo[1800]")
    assert isinstance(e, MatrixSelector) and e.range_ms == 1_800_000 and e.range_expr is None
    e = parse("foo offset -5m")
    assert isinstance(e, VectorSelector) and e.offset_ms == -300_000 and e.offset_expr is None


def test_arithmetic_needs_the_feature_flag() -> None:
    with pytest.raises(ParseError, match="experimental"):
        parse("foo[5m + 1m]")
    with pytest.raises(ParseError, match="experimental"):
        parse("foo offset step()")


@pytest.mark.parametrize(
    ("q", "msg"),
    [
        ("foo[0]", "duration must be greater than 0"),
        ("foo[1m / 0]", "division by zero"),
        ("foo[1m % 0]", "modulo by zero"),
    ],
)
def test_parse_errors(q: str, msg: str) -> None:
    with pytest.raises(ParseError, match=msg):
        parse(q, experimental=True)


def test_resolve_step_and_range() -> None:
    e = parse("foo[1m:step() * 2] offset -range()", experimental=True)
    r = resolve(e, 15_000, 3_600_000)
    assert isinstance(r, SubqueryExpr)
    assert (r.range_ms, r.step_ms, r.offset_ms) == (60_000, 30_000, -3_600_000)
    assert r.step_expr is None and r.offset_expr is None
    e = parse("rate(foo[step() + 1])", experimental=True)
    with pytest.raises(BadDataError, match="duration must be greater than 0"):
        resolve(parse("foo[step() - 1]", experimental=True), 1000, 0)
    got = resolve(e, 5000, 0)
    assert format_expr(got) == "rate(foo[6s])"


def test_metric_named_like_a_fill_modifier() -> None:
    e = parse("other + fill(0) fill", experimental=True)
    assert isinstance(e, BinaryExpr) and isinstance(e.rhs, VectorSelector)
    assert e.rhs.name == "fill" and e.matching is not None and e.matching.fill_left == 0
    e = parse("fill_left + other", experimental=True)
    assert isinstance(e, BinaryExpr) and isinstance(e.lhs, VectorSelector)
    assert parse(format_expr(e), experimental=True) == e
