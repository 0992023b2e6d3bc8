"""The steady-page fast path reads exactly what the full parser reads, or declines."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from omtsdb.model.exposition import parse
from omtsdb.scrape.fastparse import reparse, skeleton_of

VALUE_TEXT = st.one_of(
    st.floats(allow_nan=False).map(repr),
    st.integers(-(10**12), 10**12).map(str),
    st.sampled_from(["NaN", "+Inf", "-Inf", "-0", "1e+06", "1.5E-3", "0.0", ".5", "5."]),
)


def page(values: list[str], names: list[str]) -> bytes:
    lines = ["# HELP m A metric.", "# TYPE m gauge"]
    for i, (n, v) in enumerate(zip(names, values, strict=True)):
        lines.append(f'm{{id="{i}",name="{n}"}} {v}')
    lines.append("up 1")
    return ("\n".join(lines) + "\n").encode()


def bits(a: np.ndarray) -> list[int]:  # type: ignore[type-arg]
    return a.view(np.uint64).tolist()  # type: ignore[no-any-return]


@settings(max_examples=200, deadline=None)
@given(
    names=st.lists(st.text('ab c{}=,\\"', max_size=6), min_size=1, max_size=8),
    data=st.data(),
)
def test_same_shape_reads_bit_exact(names: list[str], data: st.DataObject) -> None:
    names = [n.replace("\\", "\\\\").replace('"', '\\"') for n in names]
    v1 = data.draw(st.lists(VALUE_TEXT, min_size=len(names), max_size=len(names)))
    v2 = data.draw(st.lists(VALUE_TEXT, min_size=len(names), max_size=len(names)))
    p1, p2 = page(v1, names), page(v2, names)
    sk = skeleton_of(p1, parse(p1, "text"))
    assert sk is not None
    got = reparse(p2, sk)
    want = parse(p2, "text")
    assert got is not None
    assert got.series == want.series and got.series_idx.tolist() == want.series_idx.tolist()
    assert bits(got.vs) == bits(want.vs) and got.ts.tolist() == want.ts.tolist()


def test_a_different_shape_declines() -> None:
    p1 = page(["1", "2"], ["a", "b"])
    sk = skeleton_of(p1, parse(p1, "text"))
    assert sk is not None
    for other in (
        page(["1", "2", "3"], ["a", "b", "c"]),  # a new series
        page(["1"], ["a"]),  # a missing one
        page(["1", "2"], ["a", "x"]),  # a label value changed
        p1.replace(b"} 2\n", b"} 2 1000\n"),  # a timestamp
        p1.replace(b"A metric.", b"Another text."),  # a comment changed
        p1.replace(b"} 2\n", b"} 0x1p3\n"),  # a token strtod and Go read differently
        p1.replace(b"} 2\n", b"} 1_000\n"),  # not a number for Prometheus
        p1.replace(b"} 2\n", b"}2\n"),  # no space before the value
        b"",
    ):
        assert reparse(other, sk) is None, other
    # timestamps or OpenMetrics: no skeleton at all
    with_ts = b"m 1 1000\n"
    assert skeleton_of(with_ts, parse(with_ts, "text")) is None
    om = b"# TYPE m gauge\nm 1\n# EOF\n"
    assert skeleton_of(om, parse(om, "openmetrics")) is None


def test_nan_token_gets_gos_nan_bits() -> None:
    p1 = page(["1"], ["a"])
    sk = skeleton_of(p1, parse(p1, "text"))
    assert sk is not None
    got = reparse(page(["NaN"], ["a"]), sk)
    assert got is not None and bits(got.vs)[0] == 0x7FF8000000000001
