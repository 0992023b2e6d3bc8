"""Integer array helpers: zig-zag, byte-width packing, delta orders, optional zstd."""

from __future__ import annotations

import struct
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

import numpy as np
import numpy.typing as npt
import zstandard

from omtsdb.errors import CorruptionError
from omtsdb.model.samples import I64

U64 = npt.NDArray[np.uint64]

_TLS = threading.local()  # zstd (de)compressor objects must not be shared between threads


def _zc() -> zstandard.ZstdCompressor:
    z = getattr(_TLS, "zc", None)
    if z is None:
        z = _TLS.zc = zstandard.ZstdCompressor(level=3)
    return z


def _zd() -> zstandard.ZstdDecompressor:
    z = getattr(_TLS, "zd", None)
    if z is None:
        z = _TLS.zd = zstandard.ZstdDecompressor()
    return z


_WIDTHS = (1, 2, 4, 8)
_DT = {1: "<u1", 2: "<u2", 4: "<u4", 8: "<u8"}


def zigzag(a: I64) -> U64:
    return ((a << 1) ^ (a >> 63)).view(np.uint64)


def unzigzag(u: U64) -> I64:
    out = (u >> np.uint64(1)).view(np.int64)
    out ^= -(u & np.uint64(1)).view(np.int64)
    return out


def _bitpack(u: U64, width: int) -> bytes:
    bits = np.unpackbits(u.astype("<u8").view(np.uint8).reshape(-1, 8), axis=1, bitorder="little")
    return np.packbits(bits[:, :width].reshape(-1), bitorder="little").tobytes()


def _bitunpack(data: bytes, n: int, width: int) -> U64:
    need = (n * width + 7) // 8
    if len(data) != need:
        raise CorruptionError("bit-packed integers: bad length")
    if width <= 8:
        # 8 values of `width` bits are exactly `width` bytes: widen each group to a u64 and
        # cut it with 8 shifts at once
        m = -(-n // 8)
        grp = np.zeros((m, 8), np.uint8)
        raw = np.frombuffer(data, np.uint8)
        flat = np.zeros(m * width, np.uint8)
        flat[: raw.size] = raw
        grp[:, :width] = flat.reshape(m, width)
        words = grp.view("<u8")  # (m, 1)
        shifts = (np.arange(8, dtype=np.uint64) * np.uint64(width)).reshape(1, 8)
        vals = (words >> shifts) & np.uint64((1 << width) - 1)
        out: U64 = vals.reshape(-1)[:n].astype(np.uint64)
        return out
    if width <= 24:
        # each value lies within the 4 bytes from its first byte: gather them, shift, mask
        buf = np.frombuffer(data + bytes(4), np.uint8)
        off = np.arange(n, dtype=np.int64) * width
        at = off >> 3
        word = buf[at].astype(np.uint32)
        word |= buf[at + 1].astype(np.uint32) << np.uint32(8)
        word |= buf[at + 2].astype(np.uint32) << np.uint32(16)
        word |= buf[at + 3].astype(np.uint32) << np.uint32(24)
        word >>= (off & 7).astype(np.uint32)
        word &= np.uint32((1 << width) - 1)
        res: U64 = word.astype(np.uint64)
        return res
    bits = np.unpackbits(np.frombuffer(data, np.uint8), count=n * width, bitorder="little")
    w = next(b for b in _WIDTHS if width <= 8 * b)  # pad to the narrowest integer type
    full = np.zeros((n, 8 * w), np.uint8)
    full[:, :width] = bits.reshape(n, width)
    packed = np.packbits(full, axis=1, bitorder="little")
    return packed.view(_DT[w]).reshape(n).astype(np.uint64)


_FAST: ContextVar[bool] = ContextVar("omtsdb_fast_packing", default=False)


@contextmanager
def fast_packing() -> Iterator[None]:
    """Within this block ``pack_u64`` only tries the cheap modes (raw, repeated, bit-packed):
    for head chunks, which are re-encoded when merged and again when written to a block."""
    token = _FAST.set(True)
    try:
        yield
    finally:
        _FAST.reset(token)


def pack_u64(u: U64) -> bytes:
    """``mode u8 | width u8 | data``. Modes: 0 bytes of a fixed width, 1 the same zstd'd,
    2 bit-packed at the exact width, 3 byte planes zstd'd, 4 a first value and one repeated
    value, 5 one value repeated, 6 bit-packed then zstd'd, 7 Golomb-Rice (width = k).
    The smallest wins (of the cheap modes only, inside ``fast_packing``)."""
    mx = int(u.max()) if u.size else 0
    if mx == 0:
        return bytes((0, 0))
    if u.size > 1 and np.all(u == u[0]):  # one value repeated
        return bytes((5, 8)) + u[:1].astype("<u8").tobytes()
    if u.size > 2 and np.all(u[1:] == u[1]):  # a start value, then one value repeated
        return bytes((4, 8)) + u[:2].astype("<u8").tobytes()
    bw = next(w for w in _WIDTHS if mx < 1 << (8 * w))
    raw = u.astype(_DT[bw]).tobytes()
    best = bytes((0, bw)) + raw
    if _FAST.get():
        width = mx.bit_length()
        if width % 8 and (u.size * width + 7) // 8 + 2 < len(best):
            best = bytes((2, width)) + _bitpack(u, width)
        return best
    if len(raw) > 32:
        z = _zc().compress(raw)
        if len(z) + 2 < len(best):
            best = bytes((1, bw)) + z
    if len(raw) > 32 and bw > 1:
        planes = u.astype(_DT[bw]).view(np.uint8).reshape(-1, bw).T.tobytes()
        z = _zc().compress(planes)
        if len(z) + 2 < len(best):
            best = bytes((3, bw)) + z
    width = mx.bit_length()
    if width % 8 and (u.size * width + 7) // 8 + 2 < len(best):
        best = bytes((2, width)) + _bitpack(u, width)
    if u.size > 32 and width < 8:
        z = _zc().compress(_bitpack(u, width))
        if len(z) + 2 < len(best):
            best = bytes((6, width)) + z
    if u.size > 32:
        k = _rice_k(u)
        if k is not None:
            r = _rice_encode(u, k)
            if len(r) + 2 < len(best):
                best = bytes((7, k)) + r
    return best


def _rice_k(u: U64) -> int | None:
    """The Rice parameter minimising the coded size, near log2(mean * ln 2)."""
    mean = float(u.mean())
    guess = max(0, int(np.log2(mean * 0.69)) if mean >= 1.5 else 0)
    best: tuple[int, int] | None = None
    for k in range(max(0, guess - 1), min(63, guess + 2)):
        bits = int((u >> np.uint64(k)).sum()) + u.size * (k + 1)
        if best is None or bits < best[0]:
            best = (bits, k)
    if best is None or best[0] > 64 * u.size:
        return None
    return best[1]


def _rice_encode(u: U64, k: int) -> bytes:
    """Golomb-Rice: the quotients ``u >> k`` in unary (ones, then a zero) as one bit stream,
    the ``k``-bit remainders bit-packed as another: both directions are array operations."""
    q = (u >> np.uint64(k)).astype(np.int64)
    bits = np.ones(int(q.sum()) + u.size, np.uint8)
    bits[np.cumsum(q + 1) - 1] = 0
    unary = np.packbits(bits, bitorder="little").tobytes()
    rem = _bitpack(u & np.uint64((1 << k) - 1), k) if k else b""
    return struct.pack("<I", len(unary)) + unary + rem


def _rice_decode(data: bytes, n: int, k: int) -> U64:
    if len(data) < 4 or k > 63:
        raise CorruptionError("rice: bad header")
    (ulen,) = struct.unpack_from("<I", data, 0)
    if 4 + ulen > len(data):
        raise CorruptionError("rice: bad length")
    bits = np.unpackbits(np.frombuffer(data, np.uint8, ulen, 4), bitorder="little")
    zeros = np.flatnonzero(bits == 0)
    if zeros.size < n:
        raise CorruptionError("rice: truncated")
    q = np.diff(zeros[:n], prepend=-1) - 1
    out = q.astype(np.uint64) << np.uint64(k)
    if k:
        out |= _bitunpack(data[4 + ulen :], n, k)
    elif len(data) != 4 + ulen:
        raise CorruptionError("rice: bad length")
    return out


def unpack_u64(buf: bytes | memoryview, n: int) -> U64:
    if len(buf) < 2:
        raise CorruptionError("packed integers: short header")
    mode, width = buf[0], buf[1]
    data = bytes(buf[2:])
    if mode == 0 and width == 0:
        if data:
            raise CorruptionError("packed integers: bad length")
        return np.zeros(n, np.uint64)
    if mode == 6:
        if not 1 <= width <= 8:
            raise CorruptionError("packed integers: bad width")
        return _bitunpack(unzstd(data, (n * width + 7) // 8), n, width)
    if mode == 7:
        return _rice_decode(data, n, width)
    if mode == 5:
        if len(data) != 8:
            raise CorruptionError("packed integers: bad length")
        return np.full(n, np.frombuffer(data, "<u8", 1)[0], np.uint64)
    if mode == 4:
        if len(data) != 16 or n < 2:
            raise CorruptionError("packed integers: bad length")
        first, rest = np.frombuffer(data, "<u8", 2).astype(np.uint64)
        out = np.full(n, rest, np.uint64)
        out[0] = first
        return out
    if mode == 2:
        if not 1 <= width <= 64:
            raise CorruptionError("packed integers: bad width")
        return _bitunpack(data, n, width)
    if width not in _DT or mode not in (0, 1, 3):
        raise CorruptionError("packed integers: bad header")
    return np.frombuffer(byte_packed(data, mode, n, width), _DT[width]).astype(np.uint64)


def unzstd(data: bytes | memoryview, limit: int) -> bytes:
    """A zstd frame's content (at most ``limit`` bytes); CorruptionError when it is bad."""
    try:
        out: bytes = _zd().decompress(data, max_output_size=limit)
    except zstandard.ZstdError as e:
        raise CorruptionError(f"zstd: {e}") from None
    return out


def byte_packed(data: bytes | memoryview, mode: int, n: int, width: int) -> bytes:
    """The little-endian ``width``-byte integers of a byte-packed stream: mode 0 as stored,
    1 zstd, 3 zstd over byte planes."""
    if mode != 0:
        data = unzstd(data, n * width)
    if len(data) != n * width:
        raise CorruptionError("packed integers: bad length")
    if mode == 3 and width > 1:  # byte planes back to little-endian integers
        return np.frombuffer(data, np.uint8).reshape(width, n).T.tobytes()
    return bytes(data)


def deltas(a: I64, order: int) -> I64:
    """First ``order`` values kept, then differences of that order (wrapping int64)."""
    out = a.copy()
    for _ in range(order):
        out[1:] = np.diff(out)
    return out


def undeltas(d: I64, order: int) -> I64:
    out = d
    for _ in range(order):
        out = np.cumsum(out, dtype=np.int64)
    return out


def best_order(a: I64) -> int:
    """Delta order 0, 1 or 2 whose zig-zagged residuals are smallest."""
    if a.size < 3:
        return 1
    if np.all(a[2:] - a[1:-1] == a[1] - a[0]):
        return 1  # constant step: packs as a start value and the step
    f = a.astype(np.float64)
    d1 = np.diff(f)
    d2 = np.diff(d1)
    costs = (float(np.abs(f).sum()), float(np.abs(d1).sum()), float(np.abs(d2).sum()))
    return costs.index(min(costs))
