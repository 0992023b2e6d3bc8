"""Integer array helpers: zig-zag, byte-width packing, delta orders, optional zstd."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import zstandard

from omtsdb.errors import CorruptionError
from omtsdb.model.samples import I64

U64 = npt.NDArray[np.uint64]

_ZC = zstandard.ZstdCompressor(level=3)
_ZD = zstandard.ZstdDecompressor()
_WIDTHS = (1, 2, 4, 8)
_DT = {1: "<u1", 2: "<u2", 4: "<u4", 8: "<u8"}


def zigzag(a: I64) -> U64:
    return ((a << 1) ^ (a >> 63)).view(np.uint64)


def unzigzag(u: U64) -> I64:
    s = u.view(np.int64)
    return (u >> np.uint64(1)).view(np.int64) ^ -(s & 1)


def _bitpack(u: U64, width: int) -> bytes:
    bits = np.unpackbits(u.astype("<u8").view(np.uint8).reshape(-1, 8), axis=1, bitorder="little")
    return np.packbits(bits[:, :width].reshape(-1), bitorder="little").tobytes()


def _bitunpack(data: bytes, n: int, width: int) -> U64:
    need = (n * width + 7) // 8
    if len(data) != need:
        raise CorruptionError("bit-packed integers: bad length")
    bits = np.unpackbits(np.frombuffer(data, np.uint8), count=n * width, bitorder="little")
    w = next(b for b in _WIDTHS if width <= 8 * b)  # pad to the narrowest integer type
    full = np.zeros((n, 8 * w), np.uint8)
    full[:, :width] = bits.reshape(n, width)
    packed = np.packbits(full, axis=1, bitorder="little")
    return packed.view(_DT[w]).reshape(n).astype(np.uint64)


def pack_u64(u: U64) -> bytes:
    """``mode u8 | width u8 | data``. Modes: 0 bytes of a fixed width, 1 the same zstd'd,
    2 bit-packed at the exact width, 3 byte planes zstd'd, 4 a first value and one repeated
    value, 5 one value repeated. The smallest wins."""
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
    if len(raw) > 32:
        z = _ZC.compress(raw)
        if len(z) + 2 < len(best):
            best = bytes((1, bw)) + z
    if len(raw) > 32 and bw > 1:
        planes = u.astype(_DT[bw]).view(np.uint8).reshape(-1, bw).T.tobytes()
        z = _ZC.compress(planes)
        if len(z) + 2 < len(best):
            best = bytes((3, bw)) + z
    width = mx.bit_length()
    if width % 8 and (u.size * width + 7) // 8 + 2 < len(best):
        best = bytes((2, width)) + _bitpack(u, width)
    return best


def unpack_u64(buf: bytes | memoryview, n: int) -> U64:
    if len(buf) < 2:
        raise CorruptionError("packed integers: short header")
    mode, width = buf[0], buf[1]
    data = bytes(buf[2:])
    if mode == 0 and width == 0:
        if data:
            raise CorruptionError("packed integers: bad length")
        return np.zeros(n, np.uint64)
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
    if mode in (1, 3):
        try:
            data = _ZD.decompress(data, max_output_size=n * width)
        except zstandard.ZstdError as e:
            raise CorruptionError(f"zstd: {e}") from None
    if len(data) != n * width:
        raise CorruptionError("packed integers: bad length")
    if mode == 3:  # byte planes back to little-endian integers
        data = np.frombuffer(data, np.uint8).reshape(width, n).T.tobytes()
    return np.frombuffer(data, _DT[width]).astype(np.uint64)


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
