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


def pack_u64(u: U64) -> bytes:
    """``width u8 | zstd u8 | data``: fixed byte width, zstd'd when that is smaller."""
    mx = int(u.max()) if u.size else 0
    width = next(w for w in _WIDTHS if mx < 1 << (8 * w))
    raw = u.astype(_DT[width]).tobytes()
    if len(raw) > 32:
        z = _ZC.compress(raw)
        if len(z) < len(raw):
            return bytes((width, 1)) + z
    return bytes((width, 0)) + raw


def unpack_u64(buf: bytes | memoryview, n: int) -> U64:
    if len(buf) < 2:
        raise CorruptionError("packed integers: short header")
    width, z = buf[0], buf[1]
    if width not in _DT:
        raise CorruptionError("packed integers: bad width")
    data = bytes(buf[2:])
    if z:
        try:
            data = _ZD.decompress(data, max_output_size=n * width)
        except zstandard.ZstdError as e:
            raise CorruptionError(f"zstd: {e}") from None
    if len(data) != n * width:
        raise CorruptionError("packed integers: bad length")
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
    f = a.astype(np.float64)
    d1 = np.diff(f)
    d2 = np.diff(d1)
    costs = (float(np.abs(f).sum()), float(np.abs(d1).sum()), float(np.abs(d2).sum()))
    return costs.index(min(costs))
