"""Prometheus's XOR (Gorilla) float chunk encoding, as remote read's STREAMED_XOR_CHUNKS
carries it, and CRC-32C (Castagnoli) for the stream's frames.

Chunk layout: a big-endian uint16 sample count, then a bit stream (most significant bit first):
the first timestamp as a zig-zag varint and the first value's 64 bits; the second timestamp as
an unsigned varint delta and the value XOR-encoded; then per sample the delta-of-delta of the
timestamp in one of five size classes ('0', '10'+14 bits, '110'+17, '1110'+20, '1111'+64) and
the value XOR-encoded against the previous one ('0' when equal; '10' + significant bits in the
previous window; '11' + 5 bits leading zeros + 6 bits length + the bits).
"""

from __future__ import annotations

import struct
from collections.abc import Sequence

_D = struct.Struct(">d")
_Q = struct.Struct(">Q")
M64 = (1 << 64) - 1
MAX_SAMPLES_PER_CHUNK = 120


def _bits(v: float) -> int:
    return int(_Q.unpack(_D.pack(v))[0])


def _float(b: int) -> float:
    return float(_D.unpack(_Q.pack(b))[0])


class _Writer:
    __slots__ = ("acc", "n")

    def __init__(self) -> None:
        self.acc = 0
        self.n = 0

    def write(self, value: int, nbits: int) -> None:
        self.acc = (self.acc << nbits) | (value & ((1 << nbits) - 1))
        self.n += nbits

    def varint_bytes(self, data: bytes) -> None:
        for b in data:
            self.write(b, 8)

    def getvalue(self) -> bytes:
        pad = (-self.n) % 8
        return (self.acc << pad).to_bytes((self.n + pad) // 8, "big")


def _uvarint(x: int) -> bytes:
    out = bytearray()
    while x >= 0x80:
        out.append((x & 0x7F) | 0x80)
        x >>= 7
    out.append(x)
    return bytes(out)


def _bit_range(x: int, nbits: int) -> bool:
    return -((1 << (nbits - 1)) - 1) <= x <= (1 << (nbits - 1))


def _leading_zeros(x: int) -> int:
    return 64 - x.bit_length()


def _trailing_zeros(x: int) -> int:
    return (x & -x).bit_length() - 1


def encode_chunk(ts: Sequence[int], vs: Sequence[float]) -> bytes:
    """One XOR chunk of the samples (at most 65535; remote read cuts at 120)."""
    n = len(ts)
    if n > 0xFFFF:
        raise ValueError("chunk capacity exceeded")
    w = _Writer()
    t_prev = 0
    t_delta = 0
    v_prev = 0
    leading, trailing = 0xFF, 0
    for i in range(n):
        t = int(ts[i])
        vb = _bits(float(vs[i]))
        if i == 0:
            w.varint_bytes(_uvarint(((t << 1) ^ (t >> 63)) & M64))
            w.write(vb, 64)
        else:
            d = t - t_prev
            if i == 1:
                w.varint_bytes(_uvarint(d & M64))
            else:
                dod = d - t_delta
                if dod == 0:
                    w.write(0, 1)
                elif _bit_range(dod, 14):
                    w.write(0b10, 2)
                    w.write(dod, 14)
                elif _bit_range(dod, 17):
                    w.write(0b110, 3)
                    w.write(dod, 17)
                elif _bit_range(dod, 20):
                    w.write(0b1110, 4)
                    w.write(dod, 20)
                else:
                    w.write(0b1111, 4)
                    w.write(dod, 64)
            t_delta = d
            delta = vb ^ v_prev
            if delta == 0:
                w.write(0, 1)
            else:
                w.write(1, 1)
                lead = min(_leading_zeros(delta), 31)
                trail = _trailing_zeros(delta)
                if leading != 0xFF and lead >= leading and trail >= trailing:
                    w.write(0, 1)
                    w.write(delta >> trailing, 64 - leading - trailing)
                else:
                    leading, trailing = lead, trail
                    w.write(1, 1)
                    w.write(lead, 5)
                    sig = 64 - lead - trail
                    w.write(sig, 6)  # 64 is written as 0
                    w.write(delta >> trail, sig)
        t_prev = t
        v_prev = vb
    return n.to_bytes(2, "big") + w.getvalue()


class _Reader:
    __slots__ = ("data", "pos")

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0  # in bits

    def read(self, nbits: int) -> int:
        out = 0
        for _ in range(nbits):
            byte = self.data[self.pos >> 3]
            out = (out << 1) | ((byte >> (7 - (self.pos & 7))) & 1)
            self.pos += 1
        return out

    def uvarint(self) -> int:
        x = shift = 0
        while True:
            b = self.read(8)
            x |= (b & 0x7F) << shift
            if b < 0x80:
                return x
            shift += 7


def _signed(bits: int, n: int) -> int:
    if n == 64:
        return bits - (1 << 64) if bits >= (1 << 63) else bits
    return bits - (1 << n) if bits > (1 << (n - 1)) else bits


def decode_chunk(data: bytes) -> tuple[list[int], list[float]]:
    """Samples of an XOR chunk (used by tests and tools; slow, bit by bit)."""
    n = int.from_bytes(data[:2], "big")
    r = _Reader(data[2:])
    ts: list[int] = []
    vs: list[float] = []
    t = t_delta = vb = 0
    leading = trailing = 0
    for i in range(n):
        if i == 0:
            z = r.uvarint()
            t = (z >> 1) ^ -(z & 1)
            vb = r.read(64)
        else:
            if i == 1:
                t_delta = r.uvarint()
            else:
                size = 0
                for _ in range(4):
                    if r.read(1) == 0:
                        break
                    size += 1
                dod = 0
                if size:
                    nb = {1: 14, 2: 17, 3: 20, 4: 64}[size]
                    dod = _signed(r.read(nb), nb)
                t_delta += dod
            t += t_delta
            if r.read(1):
                if r.read(1):
                    leading = r.read(5)
                    sig = r.read(6) or 64
                    trailing = 64 - leading - sig
                vb ^= r.read(64 - leading - trailing) << trailing
        ts.append(t)
        vs.append(_float(vb))
    return ts, vs


def _crc32c_table() -> list[int]:
    table = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        table.append(c)
    return table


_CRC_TABLE = _crc32c_table()


def crc32c(data: bytes) -> int:
    """CRC-32C (Castagnoli), as Go's ``crc32.MakeTable(crc32.Castagnoli)``."""
    crc = 0xFFFFFFFF
    table = _CRC_TABLE
    for b in data:
        crc = table[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF
