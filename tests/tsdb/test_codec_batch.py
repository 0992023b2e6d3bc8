"""Batch decoding equals one-chunk decoding bit for bit, for every packing mode and width."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from omtsdb.errors import CorruptionError
from omtsdb.tsdb.codec.baseline import DAY_MS, learn_baseline
from omtsdb.tsdb.codec.batch import _Streams, decode_batch
from omtsdb.tsdb.codec.chunk import decode_chunk, decode_timestamps, encode_chunk
from omtsdb.tsdb.codec.ints import (
    _bitpack,
    _rice_encode,
    _rice_k,
    _zc,
    pack_u64,
    unpack_u64,
    unzigzag,
)

from .test_codec import f64, timestamps, values


@st.composite
def chunks(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray]:  # type: ignore[type-arg]
    ts = draw(timestamps())
    n = ts.size
    kind = draw(st.sampled_from(["any", "decimal", "counter", "gauge", "const", "walk"]))
    if kind == "const":
        vs = np.full(n, draw(values))
    elif kind == "counter":
        inc = draw(st.lists(st.integers(0, 10**5), min_size=n, max_size=n))
        vs = np.cumsum(np.array(inc, np.float64)) / 10
    elif kind == "gauge":
        vs = np.array(draw(st.lists(st.integers(-(10**6), 10**6), min_size=n, max_size=n))) / 100
    elif kind == "walk":  # small steps: narrow bit widths, Rice and zstd'd bit packing
        scale = draw(st.sampled_from([1, 3, 100, 10**5]))
        seed = draw(st.integers(0, 2**32 - 1))
        steps = np.random.default_rng(seed).integers(-scale, scale + 1, n)
        vs = np.cumsum(steps).astype(np.float64) / draw(st.sampled_from([1.0, 10.0, 1000.0]))
    else:
        vs = np.array(draw(st.lists(values, min_size=n, max_size=n)), np.float64)
    if draw(st.booleans()):
        vs[draw(st.integers(0, n - 1))] = f64(0x7FF0000000000002)
    return ts, vs


@pytest.mark.slow
@settings(max_examples=150, deadline=None)
@given(st.lists(chunks(), min_size=1, max_size=12), st.data())
def test_batch_equals_one_chunk_decoding(cs: list, data: st.DataObject) -> None:  # type: ignore[type-arg]
    thorough = data.draw(st.booleans())
    bufs = [encode_chunk(ts, vs, thorough=thorough) for ts, vs in cs]
    # a chunk sharing the first chunk's timestamps, as blocks write them
    ts0, vs0 = cs[0]
    shared = decode_timestamps(bufs[0])
    bufs.append(encode_chunk(ts0, vs0[::-1].copy(), shared_ts=True, thorough=thorough))
    given_ts = [None] * len(cs) + [shared]
    outs = [np.empty(len(ts)) for ts, _ in cs] + [np.empty(ts0.size)]
    got_ts = decode_batch([(b, None, t, o) for b, t, o in zip(bufs, given_ts, outs, strict=True)])
    for buf, t, out, ts in zip(bufs, given_ts, outs, got_ts, strict=True):
        want_ts, want_vs = decode_chunk(buf, None, t)
        assert np.array_equal(ts, want_ts)
        assert np.array_equal(out.view(np.uint64), want_vs.view(np.uint64))


def test_batch_with_baselines() -> None:
    rng = np.random.default_rng(5)
    ts = np.arange(0, 2 * DAY_MS, 15_000, dtype=np.int64)
    shape = 40 + 20 * np.sin(2 * np.pi * (ts % DAY_MS) / DAY_MS)
    vs = np.round(shape + rng.normal(0, 0.3, ts.size), 1)
    day1 = ts < DAY_MS
    b = learn_baseline(ts[day1], vs[day1])
    assert b is not None
    t2, v2 = ts[~day1][:2000], vs[~day1][:2000].copy()
    v2[7] = f64(0x7FF0000000000002)
    with np.errstate(invalid="ignore"):  # the staleness NaN is a signalling NaN
        v3 = v2 * 3
    bufs = [encode_chunk(t2, v2, b), encode_chunk(t2, v2), encode_chunk(t2, v3, b)]
    outs = [np.empty(t2.size) for _ in bufs]
    decode_batch([(buf, b, None, o) for buf, o in zip(bufs, outs, strict=True)])
    for buf, out in zip(bufs, outs, strict=True):
        assert np.array_equal(out.view(np.uint64), decode_chunk(buf, b)[1].view(np.uint64))
    with pytest.raises(CorruptionError):
        decode_batch([(bufs[0], None, None, np.empty(t2.size))])


def _pack_as(u: np.ndarray, mode: int) -> bytes | None:  # type: ignore[type-arg]
    """``u`` packed in the given mode (None when that mode cannot hold it)."""
    mx = int(u.max()) if u.size else 0
    width = mx.bit_length()
    if mode == 2:
        return bytes((2, max(width, 1))) + _bitpack(u, max(width, 1))
    if mode == 6:
        return (
            bytes((6, max(width, 1))) + _zc().compress(_bitpack(u, max(width, 1)))
            if width <= 8
            else None
        )
    if mode == 7:
        k = _rice_k(u) if u.size else None
        return None if k is None else bytes((7, k)) + _rice_encode(u, k)
    bw = next(w for w in (1, 2, 4, 8) if mx < 1 << (8 * w))
    raw = u.astype(f"<u{bw}").tobytes()
    if mode == 0:
        return bytes((0, bw)) + raw
    if mode == 1:
        return bytes((1, bw)) + _zc().compress(raw)
    planes = u.astype(f"<u{bw}").view(np.uint8).reshape(-1, bw).T.tobytes()
    return bytes((3, bw)) + _zc().compress(planes)


ints = st.one_of(
    st.integers(0, 2**64 - 1),
    st.integers(0, 300),
    st.integers(0, 2**20),
    st.integers(2**56, 2**58),
)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.lists(ints, min_size=1, max_size=70),
            st.sampled_from([-1, 0, 1, 2, 3, 6, 7]),
            st.booleans(),
            st.integers(-(2**63), 2**63 - 1),
        ),
        min_size=1,
        max_size=10,
    )
)
def test_streams_equal_unpack_u64(items: list) -> None:  # type: ignore[type-arg]
    """Every packing mode and width, zig-zag and frame of reference, mixed in one batch."""
    streams = _Streams()
    want = []
    dests = []
    for xs, mode, zz, lo in items:
        u = np.array(xs, np.uint64)
        buf = pack_u64(u) if mode < 0 else _pack_as(u, mode)
        if buf is None:
            continue
        ref = unpack_u64(buf, u.size)
        assert np.array_equal(ref, u)
        want.append(unzigzag(ref) if zz else (ref + np.uint64(lo & (2**64 - 1))).view(np.int64))
        dests.append(np.empty(u.size, np.int64))
        streams.add(buf, u.size, dests[-1], zz, 0 if zz else lo)
    streams.run()
    for w, d in zip(want, dests, strict=True):
        assert np.array_equal(w, d)


def test_corruption_is_detected_in_a_batch() -> None:
    ts = np.arange(3000, dtype=np.int64) * 1000
    rng = np.random.default_rng(1)
    good = encode_chunk(ts, np.round(rng.random(3000) * 100, 2))
    for i in (0, 5, 30, len(good) // 2, len(good) - 1):
        bad = bytearray(good)
        bad[i] ^= 0x10
        with pytest.raises(CorruptionError):
            decode_batch(
                [(good, None, None, np.empty(3000)), (bytes(bad), None, None, np.empty(3000))]
            )
    with pytest.raises(CorruptionError):
        decode_batch([(good[:-3], None, None, np.empty(3000))])
    with pytest.raises(CorruptionError):  # the index says another sample count
        decode_batch([(good, None, None, np.empty(2999))])
    shared = encode_chunk(ts, np.ones(3000) * 2.5 + np.arange(3000), shared_ts=True)
    with pytest.raises(CorruptionError):
        decode_batch([(shared, None, None, np.empty(3000))])


@settings(max_examples=100, deadline=None)
@given(st.binary(min_size=0, max_size=300), st.integers(1, 200), st.booleans())
def test_garbage_streams_raise_corruption_or_match(buf: bytes, n: int, zz: bool) -> None:
    """Malformed payloads: the batch decoder fails exactly when the one-stream decoder does,
    and otherwise gives its result."""
    try:
        ref = unpack_u64(buf, n)
    except (CorruptionError, ValueError):
        ref = None
    dest = np.empty(n, np.int64)
    streams = _Streams()
    try:
        streams.add(buf, n, dest, zz, 0)
        streams.run()
    except (CorruptionError, ValueError):
        assert ref is None or ref.size != n
        return
    assert ref is not None
    assert np.array_equal(dest, unzigzag(ref) if zz else ref.view(np.int64))
