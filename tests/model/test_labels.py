from __future__ import annotations

import pickle

import pytest
from hypothesis import given
from hypothesis import strategies as st

from omtsdb.errors import BadDataError
from omtsdb.model import Labels, Matcher, MatchType
from omtsdb.model.samples import STALE_NAN, is_stale_nan, stale_mask

names = st.text(min_size=1, max_size=8)
pairs = st.dictionaries(names, st.text(max_size=8), max_size=6)


@given(pairs)
def test_labels_sorted_hashable_roundtrip(d: dict[str, str]) -> None:
    lb = Labels(d)
    expect = sorted((k, v) for k, v in d.items() if v != "")
    assert list(lb) == expect
    assert lb == Labels(reversed(list(d.items())))
    assert hash(lb) == hash(Labels(dict(expect)))
    assert pickle.loads(pickle.dumps(lb)) == lb


@given(pairs, pairs)
def test_labels_order_matches_pairwise_compare(a: dict[str, str], b: dict[str, str]) -> None:
    la, lb = Labels(a), Labels(b)
    assert (la < lb) == (la.sort_key() < lb.sort_key())
    assert (la < lb) + (lb < la) + (la == lb) == 1


def test_labels_helpers() -> None:
    lb = Labels({"__name__": "up", "job": "a", "instance": "x:1"})
    assert lb.name == "up"
    assert str(lb) == '{__name__="up", instance="x:1", job="a"}'
    assert lb.to_promql() == 'up{instance="x:1", job="a"}'
    assert lb.without("job").keep("instance") == Labels({"instance": "x:1"})
    assert Labels({"__name__": "a.b", "x": "1"}).to_promql() == '{"a.b", x="1"}'


def test_validate_rejects_surrogates() -> None:
    Labels({"__name__": "ünï.code", "ok": "v"}).validate()
    with pytest.raises(BadDataError):
        Labels({"a": "\udc80"}).validate()


def test_matchers() -> None:
    assert Matcher(MatchType.RE, "a", "fo+").matches("foo")
    assert not Matcher(MatchType.RE, "a", "fo+").matches("xfoo")
    assert Matcher(MatchType.RE, "a", "a.b").matches("a\nb")
    assert Matcher(MatchType.NRE, "a", "x|y").matches("")
    assert Matcher(MatchType.EQ, "a", "").matches_empty
    assert not Matcher(MatchType.NEQ, "a", "").matches_empty
    with pytest.raises(BadDataError):
        Matcher(MatchType.RE, "a", "(")


def test_hostile_regex_is_linear() -> None:
    # Catastrophic for a backtracking engine; RE2 answers at once.
    m = Matcher(MatchType.RE, "a", "(a+)+$b")
    assert not m.matches("a" * 50_000)


def test_stale_nan_bits() -> None:
    import numpy as np

    assert is_stale_nan(STALE_NAN)
    assert not is_stale_nan(float("nan"))
    arr = np.array([1.0, STALE_NAN, float("nan")])
    assert stale_mask(arr).tolist() == [False, True, False]
