"""Exposition formats: parse/print round trips, Prometheus examples, malformed input."""

from __future__ import annotations

import math
import struct

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from omtsdb.errors import ParseError
from omtsdb.model import Labels
from omtsdb.model.exposition import (
    NO_TS,
    format_go_f,
    format_go_g,
    group_by_series,
    parse,
    parse_float,
    write_openmetrics,
    write_text_family,
)
from omtsdb.model.samples import STALE_NAN

names = st.from_regex(r"[a-zA-Z_][a-zA-Z0-9_]{0,8}", fullmatch=True)
utf8_names = st.text(st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=6)
values_text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=8)
floats = st.one_of(
    st.floats(allow_nan=False),
    st.sampled_from([float("nan"), STALE_NAN, math.inf, -math.inf, -0.0, 5e-324, 1e308]),
    st.integers(0, 2**64 - 1).map(lambda b: struct.unpack("<d", struct.pack("<Q", b))[0]),
)


def bits(a: np.ndarray) -> list[int]:  # type: ignore[type-arg]
    return a.astype(np.float64).view(np.uint64).tolist()  # type: ignore[no-any-return]


@settings(max_examples=150, deadline=None)
@given(
    metric=st.one_of(names, utf8_names),
    labels=st.dictionaries(st.one_of(names, utf8_names), values_text, max_size=4),
    vals=st.lists(floats, min_size=1, max_size=10),
    start=st.integers(-(10**12), 10**13),
)
@pytest.mark.slow
def test_openmetrics_round_trip_bit_exact(
    metric: str, labels: dict[str, str], vals: list[float], start: int
) -> None:
    labels.pop("__name__", None)
    lb = Labels({**labels, "__name__": metric})
    ts = start + np.arange(len(vals), dtype=np.int64) * 1001
    vs = np.array(vals, np.float64)
    text = "".join(write_openmetrics([(lb, ts, vs)]))
    e = parse(text)
    assert e.format == "openmetrics"
    assert e.series == [lb]
    assert e.ts.tolist() == ts.tolist()
    assert bits(e.vs) == bits(vs)


@settings(max_examples=100, deadline=None)
@given(st.floats(allow_nan=False))
def test_go_float_formats_round_trip(v: float) -> None:
    assert parse_float(format_go_g(v)) == v or (v == 0 and format_go_g(v) in ("0", "-0"))
    assert float(format_go_f(v)) == v
    assert "e" not in format_go_f(v)


def test_go_formatting_known() -> None:
    assert format_go_f(1e21) == "1000000000000000000000"
    assert format_go_f(1e-7) == "0.0000001"
    assert format_go_f(0.1 + 0.2) == "0.30000000000000004"
    assert format_go_f(-0.0) == "-0"
    assert format_go_g(1e6) == "1e+06"
    assert format_go_g(130711296.0) == "1.30711296e+08"
    assert format_go_g(123456.0) == "123456"
    assert format_go_g(1.5e-7) == "1.5e-07"


def test_prometheus_docs_example() -> None:
    text = r"""# HELP http_requests_total The total number of HTTP requests.
# TYPE http_requests_total counter
http_requests_total{method="post",code="200"} 1027 1395066363000
http_requests_total{method="post",code="400"}    3 1395066363000

# Escaping in label values:
msdos_file_access_time_seconds{path="C:\\DIR\\FILE.TXT",error="Cannot find file:\n\"FILE.TXT\""} 1.458255915e9

# Minimalistic line:
metric_without_timestamp_and_labels 12.47

# A weird metric from before the epoch:
something_weird{problem="division by zero"} +Inf -3982045

# A histogram, which has a pretty complex representation in the text format:
# HELP http_request_duration_seconds A histogram of the request duration.
# TYPE http_request_duration_seconds histogram
http_request_duration_seconds_bucket{le="0.05"} 24054
http_request_duration_seconds_bucket{le="+Inf"} 144320
http_request_duration_seconds_sum 53423
http_request_duration_seconds_count 144320
"""
    e = parse(text)
    assert e.format == "text"
    assert len(e) == 9
    assert e.series[2] == Labels(
        {
            "__name__": "msdos_file_access_time_seconds",
            "path": "C:\\DIR\\FILE.TXT",
            "error": 'Cannot find file:\n"FILE.TXT"',
        }
    )
    assert e.ts[4] == -3982045 and e.vs[4] == math.inf
    assert e.ts[3] == NO_TS
    assert e.metadata["http_requests_total"].type == "counter"
    assert e.metadata["http_request_duration_seconds"].help.startswith("A histogram")


def test_nan_is_prometheus_nan() -> None:
    e = parse("x NaN\n")
    assert bits(e.vs) == [0x7FF8000000000001]


def test_openmetrics_features() -> None:
    text = """# TYPE acme_http_router_request_seconds summary
# UNIT acme_http_router_request_seconds seconds
# HELP acme_http_router_request_seconds Latency though all of ACME's HTTP request router.
acme_http_router_request_seconds_sum{path="/api/v1",method="GET"} 9036.32 1.5
acme_http_router_request_seconds_count{path="/api/v1",method="GET"} 807283.0 1.5
foo_bucket{le="0.1"} 8 # {trace_id="KOO5S4vxi0o"} 0.67
{"my.metric", "label.x"="a b"} 1 2.001
# EOF
"""
    e = parse(text)
    assert e.format == "openmetrics"
    assert e.metadata["acme_http_router_request_seconds"].unit == "seconds"
    assert e.ts.tolist()[:2] == [1500, 1500]
    assert e.series[3] == Labels({"__name__": "my.metric", "label.x": "a b"})
    assert e.ts[3] == 2001


@pytest.mark.parametrize(
    ("text", "line", "col"),
    [
        ('ok 1\nfoo{a="1" 1\n', 2, 11),
        ("ok 1\nok 2\nfoo 1x\n", 3, 5),
        ("foo{a=1} 2\n", 1, 7),
        ('foo{a="x",a="y"} 1\n', 1, 16),
        ("foo 1 2 3\n", 1, 4),
        ("foo 1 1.5\n", 1, 7),
        ("foo\n", 1, 4),
        ("# TYPE foo blah\n", 1, 12),
        ("foo 1_000\n", 1, 5),
    ],
)
def test_malformed_names_line_and_column(text: str, line: int, col: int) -> None:
    with pytest.raises(ParseError) as ei:
        parse(text)
    assert ei.value.line == line
    assert ei.value.column == col
    assert str(ei.value).startswith(f"line {line}, column {col}:")


def test_openmetrics_requires_eof_and_nothing_after() -> None:
    with pytest.raises(ParseError, match="EOF"):
        parse("foo 1\n", "openmetrics")
    with pytest.raises(ParseError, match="after # EOF"):
        parse("foo 1\n# EOF\nbar 2\n", "openmetrics")


def test_group_by_series_orders_by_time() -> None:
    e = parse("a 1 3\nb 1 1\na 2 1\na 3 2\n")
    groups = group_by_series(e)
    assert [(g[0].name, g[1].tolist(), g[2].tolist()) for g in groups] == [
        ("a", [1, 2, 3], [2.0, 3.0, 1.0]),
        ("b", [1], [1.0]),
    ]


def test_text_family_writer() -> None:
    out = write_text_family(
        "up", "gauge", "Is it up?\nyes", [(Labels({"__name__": "up", "job": 'a"b'}), 1e6, None)]
    )
    assert out == '# HELP up Is it up?\\nyes\n# TYPE up gauge\nup{job="a\\"b"} 1e+06\n'
    assert parse(out).vs.tolist() == [1e6]


def test_parsing_in_slices_matches_whole_and_keeps_line_numbers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from omtsdb.model.exposition import parser as P

    lines = ["# TYPE m gauge"]
    lines += [f'm{{i="{i % 7}"}} {i * 0.5} {1000 + i}' for i in range(400)]
    text = "\n".join(lines) + "\n# EOF\n"
    whole = P.parse(text.encode())
    monkeypatch.setattr(P, "SLICE", 97)
    sliced = P.parse(text.encode())
    assert sliced.series == whole.series
    assert np.array_equal(sliced.series_idx, whole.series_idx)
    assert np.array_equal(sliced.ts, whole.ts)
    assert np.array_equal(sliced.vs.view(np.uint64), whole.vs.view(np.uint64))
    bad = lines.copy()
    bad[300] = 'm{i="1"} zzz 5'
    with pytest.raises(ParseError, match="line 301, column 10: invalid value"):
        P.parse(("\n".join(bad) + "\n# EOF\n").encode())
    bad = lines.copy()
    bad[350] = 'm{i="1" 1 5'
    with pytest.raises(ParseError, match="line 351"):
        P.parse(("\n".join(bad) + "\n# EOF\n").encode())
    with pytest.raises(ParseError, match="line 203: invalid UTF-8"):
        P.parse(("\n".join(lines[:202]) + "\n\xff\n").encode("latin-1"))
