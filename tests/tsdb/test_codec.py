"""Chunk codec: bit-exact round trips over adversarial values and timestamp patterns."""

from __future__ import annotations

import struct

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from omtsdb.errors import CorruptionError
from omtsdb.model.samples import STALE_NAN
from omtsdb.tsdb.codec.baseline import (
    DAY_MS,
    decode_baseline,
    encode_baseline,
    learn_baseline,
)
from omtsdb.tsdb.codec.chunk import chunk_header, decode_chunk, encode_chunk
from omtsdb.tsdb.codec.ints import pack_u64, unpack_u64

SPECIAL_BITS = [
    0x7FF0000000000002,  # staleness marker
    0x7FF8000000000001,
    0xFFF8000000000000,
    0x7FF0000000000000,  # +Inf
    0xFFF0000000000000,  # -Inf
    0x8000000000000000,  # -0.0
    0x0000000000000001,  # smallest subnormal
    0x800FFFFFFFFFFFFF,
]


def f64(bits: int) -> float:
    return float(struct.unpack("<d", struct.pack("<Q", bits))[0])


values = st.one_of(
    st.floats(allow_nan=False),
    st.integers(-(10**6), 10**6).map(lambda i: i / 100),
    st.sampled_from(SPECIAL_BITS).map(f64),
    st.integers(0, 2**64 - 1).map(f64),  # any bit pattern, NaN payloads included
)


@st.composite
def timestamps(draw: st.DrawFn) -> np.ndarray:  # type: ignore[type-arg]
    n = draw(st.integers(1, 300))
    kind = draw(st.sampled_from(["grid", "jitter", "gaps", "random", "extreme"]))
    start = draw(st.integers(-(2**40), 2**42))
    if kind == "extreme":
        xs = sorted(set(draw(st.lists(st.integers(-(2**63), 2**63 - 1), min_size=1, max_size=n))))
        return np.array(xs, np.int64)
    step = draw(st.integers(1, 120_000))
    k = np.arange(n, dtype=np.int64)
    if kind == "gaps":
        k = np.cumsum(np.array(draw(st.lists(st.integers(1, 40), min_size=n, max_size=n))))
    ts = start + k * step
    if kind == "jitter":
        j = draw(st.lists(st.integers(-(step // 3), step // 3), min_size=n, max_size=n))
        ts = ts + np.array(j, np.int64)
    if kind == "random":
        d = draw(st.lists(st.integers(1, 10**9), min_size=n, max_size=n))
        ts = start + np.cumsum(np.array(d, np.int64))
    return np.unique(ts)


@pytest.mark.slow
@settings(max_examples=300, deadline=None)
@given(timestamps(), st.data())
def test_chunk_round_trip_bit_exact(ts: np.ndarray, data: st.DataObject) -> None:  # type: ignore[type-arg]
    kind = data.draw(st.sampled_from(["any", "decimal", "counter", "const"]))
    n = ts.size
    if kind == "const":
        vs = np.full(n, data.draw(values))
    elif kind == "counter":
        inc = data.draw(st.lists(st.integers(0, 10**5), min_size=n, max_size=n))
        vs = np.cumsum(np.array(inc, np.float64)) / 10
    else:
        vs = np.array(data.draw(st.lists(values, min_size=n, max_size=n)), np.float64)
    if data.draw(st.booleans()):
        vs[data.draw(st.integers(0, n - 1))] = f64(0x7FF0000000000002)
    buf = encode_chunk(ts, vs, thorough=data.draw(st.booleans()))
    got_ts, got_vs = decode_chunk(buf)
    assert np.array_equal(got_ts, ts)
    assert np.array_equal(got_vs.view(np.uint64), vs.view(np.uint64))
    h = chunk_header(buf)
    assert (h.n, h.mint, h.maxt) == (n, int(ts[0]), int(ts[-1]))


@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(0, 2**64 - 1), min_size=1, max_size=500))
def test_packed_integers_round_trip(xs: list[int]) -> None:
    u = np.array(xs, np.uint64)
    assert np.array_equal(unpack_u64(pack_u64(u), u.size), u)


def test_regular_scrapes_cost_almost_nothing() -> None:
    ts = 1_700_000_000_000 + np.arange(1000, dtype=np.int64) * 15_000
    assert len(encode_chunk(ts, np.ones(1000))) < 48
    counter = np.arange(1000, dtype=np.float64) * 3
    assert len(encode_chunk(ts, counter)) < 60


def test_baseline_round_trip_and_lossless_use() -> None:
    rng = np.random.default_rng(5)
    ts = np.arange(0, 2 * DAY_MS, 15_000, dtype=np.int64)
    shape = 40 + 20 * np.sin(2 * np.pi * (ts % DAY_MS) / DAY_MS)
    vs = np.round(shape + rng.normal(0, 0.3, ts.size), 1)
    day1 = ts < DAY_MS
    b = learn_baseline(ts[day1], vs[day1])
    assert b is not None
    b2 = decode_baseline(encode_baseline(b))
    assert np.array_equal(b2.values, b.values)
    t2, v2 = ts[~day1][:2000], vs[~day1][:2000]
    v2[7] = STALE_NAN
    with_base = encode_chunk(t2, v2, b)
    assert chunk_header(with_base).baseline
    assert len(with_base) < len(encode_chunk(t2, v2))
    got_t, got_v = decode_chunk(with_base, b2)
    assert np.array_equal(got_v.view(np.uint64), v2.view(np.uint64))
    assert np.array_equal(got_t, t2)
    with pytest.raises(CorruptionError):
        decode_chunk(with_base, None)


def test_flat_or_sparse_history_gives_no_baseline() -> None:
    ts = np.arange(0, DAY_MS, 15_000, dtype=np.int64)
    assert learn_baseline(ts, np.ones(ts.size)) is None
    assert learn_baseline(ts[:10], np.arange(10.0)) is None


def test_corruption_is_detected() -> None:
    ts = np.arange(100, dtype=np.int64) * 1000
    buf = bytearray(encode_chunk(ts, np.random.default_rng(1).random(100)))
    for i in (0, 5, 30, len(buf) // 2, len(buf) - 1):
        bad = bytearray(buf)
        bad[i] ^= 0x10
        with pytest.raises(CorruptionError):
            decode_chunk(bytes(bad))
    with pytest.raises(CorruptionError):
        decode_chunk(bytes(buf[:-3]))
