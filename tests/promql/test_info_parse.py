"""info(): its second argument is a label selector (names inside braces, empty matchers)."""

from __future__ import annotations

import pytest

from omtsdb.errors import ParseError
from omtsdb.promql.parser import format_expr, parse


@pytest.mark.parametrize(
    "q",
    [
        'info(metric, {data=~".*"})',
        'info(metric, {__name__="target_info"})',
        'info(metric, {__name__!~".+_info", data=~".+"})',
        "info(rate(x[5m]))",
    ],
)
def test_round_trip(q: str) -> None:
    e = parse(q, experimental=True)
    assert parse(format_expr(e), experimental=True) == e


@pytest.mark.parametrize(
    ("q", "msg"),
    [
        ("info(metric, target_info)", "expected label selectors only, got vector selector"),
        ('info(metric, {a=""} + 1)', "expected label selectors only"),
        ('{a=~".*"}', "non-empty matcher"),
        ('rate({a=""}[5m])', "non-empty matcher"),
        ('info({a=""})', "non-empty matcher"),
    ],
)
def test_errors(q: str, msg: str) -> None:
    with pytest.raises(ParseError, match=msg):
        parse(q, experimental=True)
