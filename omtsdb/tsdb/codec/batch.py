"""Batch decoding: the values of many chunks at once, bit for bit what ``decode_chunk`` gives.

Decoding one chunk costs ~15 numpy calls; for a 4096-sample chunk their fixed cost is most of
the time. Here the packed integer streams of all chunks in a batch are collected first and
grouped by packing: every bit-packed stream of one width (modes 2 and 6, and modes 0, 1 and 3
as widths of 8, 16 or 32 bits) is unpacked by eight strided numpy calls over the concatenated
payloads, every Golomb-Rice stream shares one unary decode, and zig-zag is undone on the whole
group in its narrow dtype. What stays per chunk is a handful of calls on a cache-resident
slice: restoring the start values, the delta orders' cumulative sums, the decimal scaling.

Streams are padded to whole groups of 8 values before they are joined, so value ``k`` of every
group sits at the same bit offset ``k * width`` of a ``width``-byte row: one strided view of
unaligned words per ``k`` reads column ``k`` of all groups.
"""

from __future__ import annotations

import struct
import threading
import zlib
from collections.abc import Sequence
from typing import Any

import numpy as np

from omtsdb.errors import CorruptionError
from omtsdb.model.samples import F64, I64
from omtsdb.tsdb.codec.baseline import Baseline
from omtsdb.tsdb.codec.chunk import (
    _DEC,
    _HDR,
    _POW10,
    _U32,
    FLAG_BASELINE,
    FLAG_ST,
    FORM_FOR,
    TS_SHARED,
    VAL_CONST,
    VAL_DECIMAL,
    VAL_XOR,
    VERSION,
    _decode_ts,
    _decode_xor,
)
from omtsdb.tsdb.codec.ints import byte_packed, unpack_u64, unzigzag, unzstd

Arr = np.ndarray[Any, Any]
# one chunk: its bytes, its baseline, the timestamps it shares (or its own, when known: they
# are not decoded again) or None, where its values go
Job = tuple[bytes, Baseline | None, I64 | None, F64]

_Q = struct.Struct("<q")
_QQ = struct.Struct("<QQ")
_M64 = (1 << 64) - 1
_MAX_BITS = 57  # widest field an unaligned 8-byte word always holds


_TLS = threading.local()
_SCRATCH_MAX = 16 << 20  # bytes of one scratch array kept per thread


def _scratch(name: str, n: int, dt: np.dtype[Any] | type) -> Arr:
    """``n`` items of a per-thread buffer, reused between batches: freshly mapped memory costs
    page faults on every first touch, more than the decoding that fills it."""
    size = n * np.dtype(dt).itemsize
    if size > _SCRATCH_MAX:  # a batch of one huge chunk: not kept
        return np.empty(n, dt)
    buf: Arr | None = getattr(_TLS, name, None)
    if buf is None or buf.size < size:
        buf = np.empty(max(size, 1 << 16), np.uint8)
        setattr(_TLS, name, buf)
    return buf[:size].view(dt)


def _word(width: int) -> tuple[np.dtype[Any], np.dtype[Any]]:
    """The narrowest unsigned (and signed) dtype whose unaligned word holds ``width`` bits at
    any bit offset 0..7."""
    if width <= 9:
        return np.dtype("<u2"), np.dtype("<i2")
    if width <= 25:
        return np.dtype("<u4"), np.dtype("<i4")
    return np.dtype("<u8"), np.dtype("<i8")


class _Streams:
    """Packed integer streams waiting to be decoded into int64 destinations.

    ``zz`` streams are zig-zag coded; the others get ``lo`` added (frame of reference, or 0),
    wrapping like uint64 arithmetic.
    """

    def __init__(self) -> None:
        # width -> [(data, n, dest, zz, lo, rice stream index or -1)]
        self.bits: dict[int, list[tuple[bytes, int, I64, bool, int, int]]] = {}
        # [(unary bytes, k, n, dest, zz, lo)]
        self.rice: list[tuple[bytes, int, int, I64, bool, int]] = []

    def add(self, buf: bytes, n: int, dest: I64, zz: bool, lo: int) -> None:
        if len(buf) < 2:
            raise CorruptionError("packed integers: short header")
        mode, width = buf[0], buf[1]
        if mode == 2 and 1 <= width <= _MAX_BITS:
            self._bits(width, buf[2:], n, dest, zz, lo)
        elif mode == 6 and 1 <= width <= 8:
            self._bits(width, unzstd(buf[2:], (n * width + 7) // 8), n, dest, zz, lo)
        elif mode in (0, 1, 3) and width in (1, 2, 4):
            self._bits(8 * width, byte_packed(buf[2:], mode, n, width), n, dest, zz, lo)
        elif mode == 7 and width <= _MAX_BITS and n:
            if len(buf) < 6:
                raise CorruptionError("rice: bad header")
            (ulen,) = _U32.unpack_from(buf, 2)
            if 6 + ulen > len(buf):
                raise CorruptionError("rice: bad length")
            self.rice.append((buf[6 : 6 + ulen], width, n, dest, zz, lo))
            if width:
                self._bits(width, buf[6 + ulen :], n, dest, zz, lo, len(self.rice) - 1)
            elif len(buf) != 6 + ulen:
                raise CorruptionError("rice: bad length")
        else:  # constants, 8-byte words, fields wider than 57 bits, errors: one at a time
            _finish(unpack_u64(buf, n).view(np.int64), dest, zz, lo)

    def _bits(
        self, width: int, data: bytes, n: int, dest: I64, zz: bool, lo: int, rice: int = -1
    ) -> None:
        if len(data) != (n * width + 7) // 8:
            raise CorruptionError("bit-packed integers: bad length")
        self.bits.setdefault(width, []).append((data, n, dest, zz, lo, rice))

    def run(self) -> None:
        quot = self._unary()
        for width, items in self.bits.items():
            self._unpack(width, items, quot)
        for (_, k, _, dest, zz, lo), q in zip(self.rice, quot, strict=True):
            if k == 0:
                _finish(q, dest, zz, lo)

    def _unary(self) -> list[I64]:
        """Quotients of every Rice stream: one bit expansion and one zero search for all."""
        if not self.rice:
            return []
        starts = np.zeros(len(self.rice) + 1, np.int64)
        np.cumsum([8 * len(r[0]) for r in self.rice], out=starts[1:])
        raw = np.frombuffer(b"".join(r[0] for r in self.rice), np.uint8)
        zeros = np.flatnonzero(np.unpackbits(~raw, bitorder="little").view(np.bool_))
        first = np.searchsorted(zeros, starts)
        ns = np.array([r[2] for r in self.rice], np.int64)
        if np.any(first[1:] - first[:-1] < ns):
            raise CorruptionError("rice: truncated")
        q = _scratch("quot", zeros.size, np.int64)
        if zeros.size:
            np.subtract(zeros[1:], zeros[:-1], out=q[1:])
            q[1:] -= 1
            # the first quotient of each stream counts from the stream's first bit
            q[first[:-1]] = zeros[first[:-1]] - starts[:-1]
        return [q[a : a + n] for a, n in zip(first.tolist(), ns.tolist(), strict=False)]

    def _unpack(
        self, width: int, items: list[tuple[bytes, int, I64, bool, int, int]], quot: list[I64]
    ) -> None:
        parts: list[bytes] = []
        pos: list[int] = []
        rows = 0
        for data, n, _, _, _, _ in items:
            g = (n + 7) // 8
            pos.append(8 * rows)
            parts.append(data)
            pad = g * width - len(data)
            if pad:
                parts.append(bytes(pad))
            rows += g
        parts.append(bytes(8))
        raw = b"".join(parts)
        udt, sdt = _word(width)
        grid = _scratch("grid", rows * 8, udt).reshape(rows, 8)
        for k in range(8):
            col: Arr = np.ndarray((rows,), udt, raw, (k * width) >> 3, (width,))
            np.right_shift(col, udt.type((k * width) & 7), out=grid[:, k])
        grid &= udt.type((1 << width) - 1)
        u = grid.reshape(-1)
        us = u.view(sdt)  # fields are at most 57 bits: the signed view holds the same values
        one = udt.type(1)
        half: Arr = us
        sign: Arr = us
        if any(it[3] for it in items):  # zig-zag: (u >> 1) ^ -(u & 1)
            half = np.right_shift(u, one, out=_scratch("half", u.size, udt)).view(sdt)
            sign = np.bitwise_and(u, one, out=_scratch("sign", u.size, udt)).view(sdt)
            np.negative(sign, out=sign)
        for (_, n, dest, zz, lo, rice), a in zip(items, pos, strict=True):
            b = a + n
            if rice >= 0:  # a Rice remainder: value = quotient << k | remainder
                if zz:  # the zig-zag split between quotient and remainder
                    np.left_shift(quot[rice], width - 1, out=dest)
                    dest |= half[a:b]
                    dest ^= sign[a:b]
                else:
                    np.left_shift(quot[rice], width, out=dest)
                    dest |= us[a:b]
            elif zz:
                np.bitwise_xor(half[a:b], sign[a:b], out=dest)
            else:
                dest[:] = us[a:b]
            if lo:
                dest += lo


def _finish(v: I64, dest: I64, zz: bool, lo: int) -> None:
    """``dest = unzigzag(v)`` or ``v + lo`` (wrapping), ``v`` holding uint64 bits."""
    if zz:
        dest[:] = unzigzag(v.view(np.uint64))
    else:
        dest[:] = v
        if lo:
            dest += lo


class _Later:
    """What is left of a decimal chunk once its residuals are in ``seg``."""

    __slots__ = ("base", "dec", "exc_bits", "exc_pos", "order", "out", "seg", "ts")

    def __init__(
        self, seg: I64, out: F64, dec: int, order: int, base: Baseline | None, ts: I64 | None
    ) -> None:
        self.seg, self.out, self.dec, self.order = seg, out, dec, order
        self.base, self.ts = base, ts
        self.exc_pos: Arr | None = None
        self.exc_bits: Arr | None = None


def decode_batch(jobs: Sequence[Job]) -> list[I64]:
    """Decode the values of every job's chunk into its output array (whose length must be the
    chunk's sample count); returns each chunk's timestamps (the shared ones when given)."""
    work = _scratch("work", sum(j[3].size for j in jobs), np.int64)
    streams = _Streams()
    later: list[_Later] = []
    out_ts: list[I64] = []
    at = 0
    try:
        for buf, base, shared, out in jobs:
            n = out.size
            out_ts.append(_parse(buf, base, shared, out, work[at : at + n], streams, later))
            at += n
        streams.run()
        for d in later:
            seg, out = d.seg, d.out
            for _ in range(d.order):
                np.cumsum(seg, out=seg)
            if d.base is not None:
                seg += np.rint(d.base.at(d.ts) * _POW10[d.dec]).astype(np.int64)  # type: ignore[arg-type]
            if d.dec:
                np.divide(seg, _POW10[d.dec], out=out)
            else:
                out[:] = seg
            if d.exc_pos is not None:
                out.view(np.uint64)[d.exc_pos] = d.exc_bits  # type: ignore[assignment]
    except (struct.error, ValueError, IndexError) as e:
        raise CorruptionError(f"chunk: {e}") from None
    return out_ts


def _parse(
    buf: bytes,
    base: Baseline | None,
    shared: I64 | None,
    out: F64,
    seg: I64,
    streams: _Streams,
    later: list[_Later],
) -> I64:
    """Check one chunk, decode its timestamps, queue its value streams."""
    if len(buf) < _HDR.size + 8:
        raise CorruptionError("chunk: too short")
    ver, tsc, vc, flags, n, mint, maxt = _HDR.unpack_from(buf, 0)
    if ver != VERSION:
        raise CorruptionError(f"chunk: unknown version {ver}")
    end = len(buf) - 4
    if zlib.crc32(memoryview(buf)[:end]) != _U32.unpack_from(buf, end)[0]:
        raise CorruptionError("chunk: checksum mismatch")
    if n != out.size:
        raise CorruptionError("chunk: sample count differs from the index")
    (tlen,) = _U32.unpack_from(buf, _HDR.size)
    off = _HDR.size + 4
    if shared is not None:  # shared, or this chunk's own already decoded
        if shared.size != n:
            raise CorruptionError("chunk: wrong number of timestamps given")
        ts = shared
    elif tsc == TS_SHARED:
        raise CorruptionError("chunk: shares timestamps; none given")
    else:
        ts = _decode_ts(tsc, buf[off : off + tlen], n, mint, maxt)
    off += tlen
    if flags & FLAG_ST:  # start timestamps: not values (read by decode_chunk_st)
        off += 4 + _U32.unpack_from(buf, off)[0]
    if vc == VAL_CONST:
        out.view(np.uint64)[:] = np.frombuffer(buf, "<u8", 1, off)[0]
    elif vc == VAL_XOR:
        out[:] = _decode_xor(buf[off:end], n)
    elif vc == VAL_DECIMAL:
        dec, order, nexc = _DEC.unpack_from(buf, off)
        off += _DEC.size
        d = _Later(seg, out, dec, order, base if flags & FLAG_BASELINE else None, ts)
        if flags & FLAG_BASELINE and base is None:
            raise CorruptionError("chunk was encoded against a baseline; none given")
        if nexc:
            (plen,) = _U32.unpack_from(buf, off)
            pos = unpack_u64(buf[off + 4 : off + 4 + plen], nexc).astype(np.int64)
            off += 4 + plen
            if pos.max() >= n or pos.min() < 0:
                raise CorruptionError("chunk: bad exception position")
            d.exc_pos = pos
            d.exc_bits = np.frombuffer(buf, "<u8", nexc, off).astype(np.uint64)
            off += 8 * nexc
        k = min(order, n)
        if k:
            seg[:k] = np.frombuffer(buf, "<i8", k, off)
            off += 8 * k
        if off >= end:
            raise CorruptionError("chunk: short residuals")
        form = buf[off]
        if form == FORM_FOR:
            (lo,) = _Q.unpack_from(buf, off + 1)
            streams.add(buf[off + 9 : end], n - k, seg[k:], False, lo)
        elif form == 0:
            streams.add(buf[off + 1 : end], n - k, seg[k:], True, 0)
        else:
            raise CorruptionError(f"chunk: unknown residual form {form}")
        later.append(d)
    else:
        raise CorruptionError(f"chunk: unknown value codec {vc}")
    return ts
