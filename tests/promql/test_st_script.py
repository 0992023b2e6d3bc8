"""``@st`` lines of .test scripts (FORMAT.md §3.6) and how the runner stores them."""

from __future__ import annotations

import pytest

from omtsdb.model import Labels, Matcher
from omtsdb.promql.promqltest.runner import Store
from omtsdb.promql.promqltest.script import Load, expand_starts, parse_script


def test_expand_starts_items() -> None:
    assert expand_starts(["_", "_x2", "-30s", "1ms"]) == [None, None, None, -30_000, 1]
    assert expand_starts(["-1mx2"]) == [-60_000] * 3
    assert expand_starts(["-30s-1mx2"]) == [-30_000, -90_000, -150_000]
    assert expand_starts(["0+1sx1", "-0ms", "+1m"]) == [0, 1000, 0, 60_000]
    assert expand_starts(["-59999msx1"]) == [-59_999, -59_999]
    for bad in (["_x0"], ["abc"], ["1m*2"], ["-1m-1m"]):
        with pytest.raises(ValueError):
            expand_starts(bad)


def test_load_pairs_st_line_with_next_series() -> None:
    text = """
load 1m
    a{x="1"}@st  _ -30s-1mx1
    a{x="1"}     1 2 3
    b            1 2
"""
    (cmd,) = parse_script(text)
    assert isinstance(cmd, Load)
    assert cmd.starts == {Labels({"__name__": "a", "x": "1"}): [None, -30_000, -90_000]}
    store = Store()
    store.load(cmd)
    got = {
        s.labels: s
        for s in store.db.querier(0, 10**6).select(
            [Matcher.parse_op("=~", "__name__", "a|b")], 0, 10**6
        )
    }
    a = got[Labels({"__name__": "a", "x": "1"})]
    assert a.st is not None and a.st.tolist() == [0, 30_000, 30_000]
    assert got[Labels({"__name__": "b"})].st is None


@pytest.mark.parametrize(
    "body",
    [
        "a@st -1m\n    b 1",  # another series follows
        "a@st -1m -1m\n    a 1",  # slot counts differ
        "a 1\n    a@st -1m",  # nothing follows
        "a@st -1m\n    a@st -1m\n    a 1",  # two in a row
    ],
)
def test_bad_st_lines(body: str) -> None:
    with pytest.raises(ValueError):
        parse_script(f"load 1m\n    {body}\n")
