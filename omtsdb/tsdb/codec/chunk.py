"""Chunk encoding: timestamps on a scrape grid plus exceptions; values as decimal mantissas
(optionally minus a 24 h baseline) in delta form, or bit-exact XOR; zstd where it helps.

Layout (little endian; see docs/format/chunks.md)::

    header  version u8 | ts_codec u8 | val_codec u8 | flags u8 | n u32 | mint i64 | maxt i64
    ts      u32 length | payload
    starts  u32 length | payload       (only with FLAG_ST: start timestamps, codec.starts)
    values  payload (to the end)
    crc32   u32 over everything before it
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass

import numpy as np

from omtsdb.errors import CorruptionError
from omtsdb.model.samples import F64, I64
from omtsdb.tsdb.codec.baseline import Baseline
from omtsdb.tsdb.codec.ints import (
    best_order,
    deltas,
    pack_u64,
    undeltas,
    unpack_u64,
    unzigzag,
    zigzag,
)
from omtsdb.tsdb.codec.starts import decode_starts, encode_starts

VERSION = 1
TS_GRID, TS_DELTA, TS_OFFSETS, TS_SHARED = 0, 1, 2, 3
FORM_FOR = 1  # residual form byte: frame of reference (0: zig-zag)
VAL_CONST, VAL_DECIMAL, VAL_XOR = 0, 1, 2
FLAG_BASELINE = 1
FLAG_ST = 2  # a start-timestamp stream follows the timestamps
_HDR = struct.Struct("<BBBBIqq")
_U32 = struct.Struct("<I")
_DEC = struct.Struct("<BBI")
MAX_DECIMALS = 15
_POW10 = [10.0**e for e in range(MAX_DECIMALS + 1)]
_SAFE = float(2**53)


@dataclass(frozen=True, slots=True)
class ChunkInfo:
    n: int
    mint: int
    maxt: int
    ts_codec: int
    val_codec: int
    baseline: bool


def chunk_header(buf: bytes | memoryview) -> ChunkInfo:
    if len(buf) < _HDR.size + 4:
        raise CorruptionError("chunk: too short")
    ver, tsc, vc, flags, n, mint, maxt = _HDR.unpack_from(buf, 0)
    if ver != VERSION:
        raise CorruptionError(f"chunk: unknown version {ver}")
    return ChunkInfo(n, mint, maxt, tsc, vc, bool(flags & FLAG_BASELINE))


# -- timestamps -------------------------------------------------------------------------------
def _encode_ts(ts: I64) -> tuple[int, bytes]:
    if ts.size <= 2:
        return TS_GRID, b""
    d = np.diff(ts)
    if np.all(d == d[0]):
        return TS_GRID, b""
    step = int(np.median(d))
    delta = struct.pack("<q", step) + pack_u64(zigzag(d - step))
    if step > 0:
        # the scrape grid: slot k_i = round((t_i - t_0) / step), offsets from the slots
        k = (ts - ts[0] + step // 2) // step
        off = ts - ts[0] - k * step
        if np.all(np.diff(k) > 0):
            gaps = pack_u64((np.diff(k) - 1).astype(np.uint64))
            grid = b"".join((struct.pack("<qI", step, len(gaps)), gaps, pack_u64(zigzag(off[1:]))))
            if len(grid) < len(delta):
                return TS_OFFSETS, grid
    return TS_DELTA, delta


def _decode_ts(codec: int, payload: bytes | memoryview, n: int, mint: int, maxt: int) -> I64:
    if codec == TS_GRID:
        if n <= 2:
            return np.array([mint, maxt][:n], np.int64)
        step = (maxt - mint) // (n - 1)
        return mint + np.arange(n, dtype=np.int64) * step
    if codec == TS_DELTA:
        (step,) = struct.unpack_from("<q", payload, 0)
        d = unzigzag(unpack_u64(payload[8:], n - 1)) + step
        out = np.empty(n, np.int64)
        out[0] = mint
        np.cumsum(d, out=out[1:])
        out[1:] += mint
        return out
    if codec == TS_OFFSETS:
        step, glen = struct.unpack_from("<qI", payload, 0)
        gaps = unpack_u64(payload[12 : 12 + glen], n - 1).astype(np.int64)
        k = np.zeros(n, np.int64)
        np.cumsum(gaps + 1, out=k[1:])
        out = np.asarray(mint + k * step, np.int64)
        out[1:] += unzigzag(unpack_u64(payload[12 + glen :], n - 1))
        return out
    raise CorruptionError(f"chunk: unknown timestamp codec {codec}")


# -- values -----------------------------------------------------------------------------------
def _decimal_mantissas(vs: F64) -> tuple[int, I64, I64] | None:
    """(decimals, mantissas, exception positions) if every ordinary value is exactly
    ``m / 10**decimals``; specials (NaN, +-Inf, -0.0) become exceptions."""
    bits = vs.view(np.uint64)
    special = ~np.isfinite(vs) | ((vs == 0) & np.signbit(vs))
    exc = np.flatnonzero(special)
    if exc.size * 4 > vs.size:
        return None
    ok = vs[~special]
    if ok.size and float(np.abs(ok).max()) >= _SAFE:
        return None
    want = bits[~special]
    # Guess the decimals from a few values' shortest text, then verify on all of them.
    probe = ok[:: max(1, ok.size // 8)][:8].tolist()
    guess = max((_decimals_of(v) for v in probe), default=0)
    for e in [guess, *range(guess + 1, MAX_DECIMALS + 1)] if guess <= MAX_DECIMALS else []:
        p = _POW10[e]
        m = np.rint(ok * p)
        if m.size and float(np.abs(m).max()) >= _SAFE:
            return None
        back = m / p if e else m
        if np.array_equal(back.view(np.uint64), want):
            full = np.zeros(vs.size, np.int64)
            full[~special] = m.astype(np.int64)
            if exc.size:  # placeholder: carry the previous mantissa (keeps deltas small)
                idx = np.where(special, 0, np.arange(vs.size))
                np.maximum.accumulate(idx, out=idx)
                full = full[idx]
            return e, full, exc.astype(np.int64)
    return None


def _decimals_of(v: float) -> int:
    r = repr(v)
    if "e" in r:
        mant, _, ex = r.partition("e")
        frac = mant.partition(".")[2].rstrip("0")
        return max(0, len(frac) - int(ex))
    frac = r.partition(".")[2]
    return 0 if frac == "0" else len(frac)


def _encode_decimal(
    ts: I64, vs: F64, baseline: Baseline | None, thorough: bool = False
) -> tuple[bytes, bool] | None:
    got = _decimal_mantissas(vs)
    if got is None:
        return None
    dec, m, exc = got
    used_base = False
    resid = m
    if baseline is not None:
        bm = np.rint(baseline.at(ts) * _POW10[dec])
        if np.all(np.abs(bm) < _SAFE):
            cand = m - bm.astype(np.int64)
            o1, o2 = best_order(m), best_order(cand)
            c1 = np.abs(deltas(m, o1)[o1:]).sum()
            c2 = np.abs(deltas(cand, o2)[o2:]).sum()
            if c2 < c1:
                resid, used_base = cand, True
    if thorough:  # the two delta orders with the cheapest estimate, fully packed: the smallest
        est = sorted(range(3), key=lambda o: _estimate_bits(deltas(resid, o)[o:]))
        cands = [(o, _pack_residuals(deltas(resid, o), o, True)) for o in est[:2]]
        order, packed = min(cands, key=lambda c: len(c[1]))
    else:
        order = best_order(resid)
        packed = _pack_residuals(deltas(resid, order), order)
    body = [_DEC.pack(dec, order, exc.size), packed]
    if exc.size:
        body.insert(1, pack_u64(exc.astype(np.uint64)))
        body.insert(2, vs[exc].view(np.uint64).astype("<u8").tobytes())
        # lengths are needed to split: prefix the packed exception positions with their size
        body[1] = _U32.pack(len(body[1])) + body[1]
    return b"".join(body), used_base


def _estimate_bits(d: I64) -> float:
    """A cheap size estimate of packed residuals: the smaller of bit width × n and the
    Golomb-Rice cost of their zig-zag form."""
    if d.size == 0:
        return 0.0
    z = zigzag(d)
    width = int(z.max()).bit_length()
    mean = float(z.mean())
    k = max(0, int(np.log2(mean * 0.69))) if mean >= 1.5 else 0
    rice = float((z >> np.uint64(k)).sum()) + d.size * (k + 1)
    return min(width * d.size, rice)


def _pack_residuals(d: I64, order: int, try_for: bool = False) -> bytes:
    """The first ``order`` (undifferenced start) values raw (a big start value must not widen
    the small deltas), a form byte, then the rest packed: zig-zag (0), or frame of reference
    (1: i64 minimum, then ``d - min``), which suits values spread evenly around no centre."""
    head = d[: min(order, d.size)]
    rest = d[head.size :]
    out = head.astype("<i8").tobytes() + bytes((0,)) + pack_u64(zigzag(rest))
    if try_for and rest.size:
        lo = rest.min()
        shifted = rest.view(np.uint64) - np.uint64(lo.view(np.uint64))  # wraps, exactly undone
        alt = head.astype("<i8").tobytes() + bytes((FORM_FOR,)) + struct.pack("<q", int(lo))
        alt += pack_u64(shifted)
        if len(alt) < len(out):
            return alt
    return out


def _unpack_residuals(buf: bytes | memoryview, n: int, order: int) -> I64:
    k = min(order, n)
    out = np.empty(n, np.int64)
    out[:k] = np.frombuffer(buf, "<i8", k)
    mv = memoryview(buf)[8 * k :]
    if len(mv) < 1:
        raise CorruptionError("chunk: short residuals")
    if mv[0] == FORM_FOR:
        (lo,) = struct.unpack_from("<q", mv, 1)
        u = unpack_u64(mv[9:], n - k) + np.uint64(lo & 0xFFFFFFFFFFFFFFFF)
        out[k:] = u.view(np.int64)
    elif mv[0] == 0:
        out[k:] = unzigzag(unpack_u64(mv[1:], n - k))
    else:
        raise CorruptionError(f"chunk: unknown residual form {mv[0]}")
    return out


def _decode_decimal(
    payload: bytes | memoryview, n: int, ts: I64, baseline: Baseline | None, used_base: bool
) -> F64:
    dec, order, nexc = _DEC.unpack_from(payload, 0)
    off = _DEC.size
    exc_pos = None
    exc_bits = None
    if nexc:
        (plen,) = _U32.unpack_from(payload, off)
        off += 4
        exc_pos = unpack_u64(payload[off : off + plen], nexc).astype(np.int64)
        off += plen
        exc_bits = np.frombuffer(payload, "<u8", nexc, off).astype(np.uint64)
        off += 8 * nexc
    resid = undeltas(_unpack_residuals(payload[off:], n, order), order)
    if used_base:
        if baseline is None:
            raise CorruptionError("chunk was encoded against a baseline; none given")
        resid = resid + np.rint(baseline.at(ts) * _POW10[dec]).astype(np.int64)
    vals = resid.astype(np.float64)
    if dec:
        vals /= _POW10[dec]
    if exc_pos is not None and exc_bits is not None:
        if exc_pos.size and (exc_pos.max() >= n or exc_pos.min() < 0):
            raise CorruptionError("chunk: bad exception position")
        vals.view(np.uint64)[exc_pos] = exc_bits
    return vals


def _encode_xor(vs: F64) -> bytes:
    bits = vs.view(np.uint64)
    x = bits.copy()
    x[1:] ^= bits[:-1]
    shuffled = x.astype("<u8").view(np.uint8).reshape(-1, 8).T.copy()
    return pack_u64(shuffled.reshape(-1).astype(np.uint64))


def _decode_xor(payload: bytes | memoryview, n: int) -> F64:
    raw = unpack_u64(payload, n * 8).astype(np.uint8)
    x = raw.reshape(8, n).T.copy().view("<u8").reshape(n).astype(np.uint64)
    bits = np.bitwise_xor.accumulate(x)
    out: F64 = bits.view(np.float64)
    return out


# -- public -----------------------------------------------------------------------------------
def encode_chunk(
    ts: I64,
    vs: F64,
    baseline: Baseline | None = None,
    *,
    shared_ts: bool = False,
    thorough: bool = False,
    st: I64 | None = None,
) -> bytes:
    """Encode strictly increasing ``ts`` and ``vs`` (same length >= 1) losslessly, with the
    start timestamps ``st`` when given and not all zero (unknown)."""
    ts = np.ascontiguousarray(ts, np.int64)
    vs = np.ascontiguousarray(vs, np.float64)
    n = ts.size
    if n == 0 or vs.size != n:
        raise ValueError("a chunk needs one or more samples and equal-length arrays")
    # shared: the timestamps equal another chunk's, which the container (a block) names
    tsc, tsp = (TS_SHARED, b"") if shared_ts else _encode_ts(ts)
    bits = vs.view(np.uint64)
    flags = 0
    if np.all(bits == bits[0]):
        vc, vp = VAL_CONST, bits[:1].astype("<u8").tobytes()
    else:
        dec = _encode_decimal(ts, vs, baseline, thorough)
        # XOR is the fallback; try it beside a decimal encoding only when that one is poor.
        xor = _encode_xor(vs) if dec is None or len(dec[0]) > 4 * n else None
        if dec is not None and (xor is None or len(dec[0]) <= len(xor)):
            vc, vp = VAL_DECIMAL, dec[0]
            flags |= FLAG_BASELINE if dec[1] else 0
        else:
            assert xor is not None
            vc, vp = VAL_XOR, xor
    parts = [b"", _U32.pack(len(tsp)), tsp, vp]
    if st is not None and st.any():
        if st.size != n:
            raise ValueError("start timestamps must match the timestamps in length")
        stp = encode_starts(ts, np.ascontiguousarray(st, np.int64))
        parts[3:3] = [_U32.pack(len(stp)), stp]
        flags |= FLAG_ST
    parts[0] = _HDR.pack(VERSION, tsc, vc, flags, n, int(ts[0]), int(ts[-1]))
    body = b"".join(parts)
    return body + _U32.pack(zlib.crc32(body))


def decode_timestamps(buf: bytes | memoryview) -> I64:
    """Only the timestamps of a chunk (checksum verified); values are not decoded."""
    info = chunk_header(buf)
    (crc,) = _U32.unpack_from(buf, len(buf) - 4)
    body = memoryview(buf)[: len(buf) - 4]
    if zlib.crc32(body) != crc:
        raise CorruptionError("chunk: checksum mismatch")
    if info.ts_codec == TS_SHARED:
        raise CorruptionError("chunk: shared timestamps refer to another shared chunk")
    (tlen,) = _U32.unpack_from(body, _HDR.size)
    off = _HDR.size + 4
    try:
        return _decode_ts(info.ts_codec, body[off : off + tlen], info.n, info.mint, info.maxt)
    except (struct.error, ValueError) as e:
        raise CorruptionError(f"chunk: {e}") from None


def decode_chunk(
    buf: bytes | memoryview, baseline: Baseline | None = None, ts: I64 | None = None
) -> tuple[I64, F64]:
    """Decode a chunk; ``ts`` supplies the timestamps of a chunk that shares them."""
    t, v, _ = decode_chunk_st(buf, baseline, ts)
    return t, v


def has_starts(buf: bytes | memoryview) -> bool:
    """Whether the chunk carries start timestamps (from its header only)."""
    return bool(buf[3] & FLAG_ST)


def chunk_starts(buf: bytes | memoryview, ts: I64) -> I64 | None:
    """Only the start timestamps of a chunk (checksum verified) whose timestamps ``ts`` are
    already decoded; ``None`` when it has none."""
    info = chunk_header(buf)
    if not buf[3] & FLAG_ST:
        return None
    (crc,) = _U32.unpack_from(buf, len(buf) - 4)
    body = memoryview(buf)[: len(buf) - 4]
    if zlib.crc32(body) != crc:
        raise CorruptionError("chunk: checksum mismatch")
    if ts.size != info.n:
        raise CorruptionError("chunk: wrong number of timestamps given")
    (tlen,) = _U32.unpack_from(body, _HDR.size)
    off = _HDR.size + 4 + tlen
    try:
        (slen,) = _U32.unpack_from(body, off)
        return decode_starts(body[off + 4 : off + 4 + slen], ts)
    except (struct.error, ValueError) as e:
        raise CorruptionError(f"chunk: {e}") from None


def decode_chunk_st(
    buf: bytes | memoryview, baseline: Baseline | None = None, ts: I64 | None = None
) -> tuple[I64, F64, I64 | None]:
    """``decode_chunk`` plus the start timestamps (``None`` when the chunk has none)."""
    info = chunk_header(buf)
    (crc,) = _U32.unpack_from(buf, len(buf) - 4)
    body = memoryview(buf)[: len(buf) - 4]
    if zlib.crc32(body) != crc:
        raise CorruptionError("chunk: checksum mismatch")
    off = _HDR.size
    (tlen,) = _U32.unpack_from(body, off)
    off += 4
    try:
        if info.ts_codec == TS_SHARED:
            if ts is None or ts.size != info.n:
                raise CorruptionError("chunk: shares timestamps; none (or the wrong ones) given")
        else:
            ts = _decode_ts(info.ts_codec, body[off : off + tlen], info.n, info.mint, info.maxt)
        off += tlen
        st = None
        if body[3] & FLAG_ST:
            (slen,) = _U32.unpack_from(body, off)
            st = decode_starts(body[off + 4 : off + 4 + slen], ts)
            off += 4 + slen
        vp = body[off:]
        if info.val_codec == VAL_CONST:
            vs = np.full(info.n, np.frombuffer(vp, "<f8", 1)[0], np.float64)
            vs.view(np.uint64)[:] = np.frombuffer(vp, "<u8", 1)[0]
        elif info.val_codec == VAL_DECIMAL:
            vs = _decode_decimal(vp, info.n, ts, baseline, info.baseline)
        elif info.val_codec == VAL_XOR:
            vs = _decode_xor(vp, info.n)
        else:
            raise CorruptionError(f"chunk: unknown value codec {info.val_codec}")
    except (struct.error, ValueError) as e:
        raise CorruptionError(f"chunk: {e}") from None
    return ts, vs, st
