"""Parser: constructs, Prometheus error texts, printer round trips, fuzzing."""

from __future__ import annotations

import contextlib
import math
import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from omtsdb.errors import ParseError
from omtsdb.promql.parser import format_expr, parse, parse_duration
from omtsdb.promql.parser.ast import (
    AggregateExpr,
    AtModifier,
    BinaryExpr,
    Call,
    Cardinality,
    MatrixSelector,
    NumberLiteral,
    SubqueryExpr,
    UnaryExpr,
    VectorSelector,
)
from tests.conftest import SHARED

QUERIES = [
    "1 + 1",
    'sum by (job) (rate(http_requests_total{a="b"}[5m]))',
    "-2 ^ -2",
    "a + on (x) group_left (y) b",
    "foo @ start() offset -5m",
    "rate(x[5m:1m])",
    "topk by (a) (3, x)",
    '{"foo.bar", "a.b"=~"x"}',
    "a and b",
    "sum_over_time(x[5m] offset 1h)",
    'count_values("v", x)',
    "a atan2 b",
    "x > bool 1",
    "sum by (sum, on) (x)",
    'x{by="a"}',
    "max_over_time(x[1h:5m] offset 1m)",
    "1 - -1",
    '"a\\nb"',
    'label_replace(up, "a", "$1", "b", "(.*)")',
    "x unless ignoring (a) y",
    "histogram_quantile(0.9, sum without (pod) (rate(h_bucket[5m])))",
]


@pytest.mark.parametrize("q", QUERIES)
def test_round_trip(q: str) -> None:
    e = parse(q)
    assert parse(format_expr(e)) == e


def test_structure() -> None:
    e = parse("-2^2")
    assert isinstance(e, UnaryExpr) and isinstance(e.expr, BinaryExpr) and e.expr.op == "^"
    e = parse("2 ^ 3 ^ 2")  # right-associative
    assert isinstance(e, BinaryExpr) and isinstance(e.rhs, BinaryExpr)
    e = parse("a or b and c")
    assert isinstance(e, BinaryExpr) and e.op == "or"
    e = parse("sum(x) without (a)")
    assert isinstance(e, AggregateExpr) and e.without and e.grouping == ("a",)
    e = parse("foo[5m] offset 1m @ 100")
    assert isinstance(e, MatrixSelector)
    assert e.vector_selector.offset_ms == 60_000 and e.vector_selector.at_ms == 100_000
    e = parse("x @ end()")
    assert isinstance(e, VectorSelector) and e.at_modifier is AtModifier.END
    e = parse("x[1h:]")
    assert isinstance(e, SubqueryExpr) and e.step_ms == 0 and e.range_ms == 3_600_000
    e = parse("a * on(x) group_right(y, z) b")
    assert isinstance(e, BinaryExpr) and e.matching is not None
    assert e.matching.card is Cardinality.ONE_TO_MANY and e.matching.include == ("y", "z")
    e = parse("rate(x[5m])")
    assert isinstance(e, Call) and e.func == "rate"


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("1e3", 1000.0),
        ("0x1F", 31.0),
        (".5", 0.5),
        ("2.", 2.0),
        ("Inf", math.inf),
        ("-inf", -math.inf),
        ("5m", 300.0),
    ],
)
def test_numbers(text: str, value: float) -> None:
    e = parse(text)
    if isinstance(e, UnaryExpr):
        e = NumberLiteral(-e.expr.value)  # type: ignore[union-attr]
    assert isinstance(e, NumberLiteral) and e.value == value
    assert math.isnan(parse("NaN").value)  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("q", "msg"),
    [
        (
            "rate(x)",
            '1:6: parse error: expected type range vector in call to function "rate", got instant vector',
        ),
        ("1 and 2", '1:1: parse error: set operator "and" not allowed in binary scalar expression'),
        ('{a=""}', "1:1: parse error: vector selector must contain at least one non-empty matcher"),
        ("nope(1)", '1:1: parse error: unknown function with name "nope"'),
        ("1 > 2", "1:1: parse error: comparisons between scalars must use BOOL modifier"),
        ("a + bool b", "1:1: parse error: bool modifier can only be used on comparison operators"),
        (
            "x[5m] + 1",
            "1:1: parse error: binary expression must contain only scalar and instant vector types",
        ),
        ("a and on(x) group_left b", '1:1: parse error: no grouping allowed for "and" operation'),
        (
            "sum(x[5m])",
            "1:5: parse error: expected type instant vector in aggregation expression, got range vector",
        ),
    ],
)
def test_error_messages(q: str, msg: str) -> None:
    with pytest.raises(ParseError) as ei:
        parse(q)
    assert str(ei.value) == msg


def test_durations() -> None:
    assert parse_duration("1h30m") == 5_400_000
    assert parse_duration("1m0s") == 60_000
    assert parse_duration("10s53ms") == 10_053
    assert parse_duration("1y") == 365 * 86_400_000


@settings(max_examples=300, deadline=None)
@given(
    st.text(
        alphabet=st.sampled_from(
            list("abc_{}[]()\"'`=~!<>+-*/^%@:,.0123456789 mshdoffsetbyonsumrate#\n")
        ),
        max_size=40,
    )
)
def test_fuzz_only_parse_errors(s: str) -> None:
    with contextlib.suppress(ParseError):
        parse(s)


def test_upstream_corpus_parses() -> None:
    d = SHARED / "conformance" / "promql-testdata"
    if not d.is_dir():
        pytest.skip("../shared/conformance is absent")
    rx = re.compile(
        r"^eval(?:_\w+)?\s+(?:instant\s+(?:at\s+\S+)?|range\s+from\s+\S+\s+to\s+\S+\s+step\s+\S+)\s+(.+)$"
    )
    total = ok = 0
    for f in d.glob("*.test"):
        for line in f.read_text().splitlines():
            m = rx.match(line.strip())
            if not m:
                continue
            total += 1
            try:
                e = parse(m.group(1), experimental=True)
                assert parse(format_expr(e), experimental=True) == e
                ok += 1
            except ParseError:
                pass
    assert total > 2000
    # Not parsed yet (3.14 experimental): native-histogram trim operators `</` `>/`,
    # histogram_quantiles, and start()/end()/range()/step() as functions in expressions.
    assert ok / total >= 0.89, f"{ok}/{total} upstream queries parse"


def test_corpus_file_exists_or_skip() -> None:
    assert Path(__file__).exists()
