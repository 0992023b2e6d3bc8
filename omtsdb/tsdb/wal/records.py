"""WAL record encoding: array-shaped series and samples records.

Framing of one record (little endian)::

    type u8 | length u32 | crc32 u32 | payload[length]

``crc32`` is zlib's CRC-32 of the type byte followed by the payload. Payloads:

- series (type 1): ``n u32 | refs u64[n] | nstr u32[n] | lens u32[sum(nstr)] | utf-8 blob``;
  series i owns ``nstr[i]`` strings, alternating label name and value.
- samples (type 2): ``n u32 | refs u64[n] | ts i64[n] | vs f64[n]`` (raw IEEE bits, so NaN
  payloads such as the staleness marker survive).
- samples with start timestamps (type 3): ``n u32 | refs u64[n] | ts i64[n] | st i64[n] |
  vs f64[n]`` (``st`` 0 = unknown). Written only for commits that carry a start timestamp, so
  logs without any are byte for byte what they were before type 3 existed.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from omtsdb.errors import CorruptionError
from omtsdb.model.labels import Labels
from omtsdb.model.samples import F64, I64

U64 = npt.NDArray[np.uint64]

HEADER = struct.Struct("<BII")
HEADER_SIZE = HEADER.size
TYPE_SERIES = 1
TYPE_SAMPLES = 2
TYPE_SAMPLES_ST = 3
TYPES = (TYPE_SERIES, TYPE_SAMPLES, TYPE_SAMPLES_ST)
_U32 = struct.Struct("<I")


@dataclass(frozen=True, slots=True)
class SeriesRecord:
    refs: U64
    labels: list[Labels]


@dataclass(frozen=True, slots=True)
class SamplesRecord:
    refs: U64
    ts: I64
    vs: F64
    st: I64 | None = None  # start timestamps (0 = unknown), None when no sample has one

    def take(self, keep: npt.NDArray[np.bool_]) -> SamplesRecord:
        st = None if self.st is None else self.st[keep]
        return SamplesRecord(self.refs[keep], self.ts[keep], self.vs[keep], st)


Record = SeriesRecord | SamplesRecord


def frame(rtype: int, payload: bytes) -> bytes:
    crc = zlib.crc32(payload, zlib.crc32(bytes((rtype,))))
    return HEADER.pack(rtype, len(payload), crc) + payload


def encode(rec: Record) -> bytes:
    if isinstance(rec, SamplesRecord):
        n = rec.refs.shape[0]
        if not (rec.ts.shape[0] == n == rec.vs.shape[0]):
            raise ValueError("samples record arrays differ in length")
        parts = [
            _U32.pack(n),
            np.ascontiguousarray(rec.refs, "<u8").tobytes(),
            np.ascontiguousarray(rec.ts, "<i8").tobytes(),
            np.ascontiguousarray(rec.vs, "<f8").tobytes(),
        ]
        if rec.st is None or not rec.st.any():
            return frame(TYPE_SAMPLES, b"".join(parts))
        if rec.st.shape[0] != n:
            raise ValueError("samples record arrays differ in length")
        parts.insert(3, np.ascontiguousarray(rec.st, "<i8").tobytes())
        return frame(TYPE_SAMPLES_ST, b"".join(parts))
    n = len(rec.labels)
    if rec.refs.shape[0] != n:
        raise ValueError("series record refs and labels differ in length")
    nstr = np.fromiter((len(lb.flat) for lb in rec.labels), np.uint32, n)
    encoded = [s.encode("utf-8") for lb in rec.labels for s in lb.flat]
    lens = np.fromiter((len(b) for b in encoded), np.uint32, len(encoded))
    payload = b"".join(
        (
            _U32.pack(n),
            np.ascontiguousarray(rec.refs, "<u8").tobytes(),
            nstr.astype("<u4").tobytes(),
            lens.astype("<u4").tobytes(),
            b"".join(encoded),
        )
    )
    return frame(TYPE_SERIES, payload)


def decode_payload(rtype: int, payload: bytes | memoryview) -> Record:
    """Decode a payload whose CRC was already checked. Raises CorruptionError."""
    try:
        if rtype in (TYPE_SAMPLES, TYPE_SAMPLES_ST):
            # refs, timestamps, [start timestamps,] values: n 8-byte words each
            (n,) = _U32.unpack_from(payload, 0)
            cols = 4 if rtype == TYPE_SAMPLES_ST else 3
            if len(payload) != 4 + 8 * cols * n:
                raise CorruptionError("samples record: bad length")
            refs = np.frombuffer(payload, "<u8", n, 4).astype(np.uint64)
            ts = np.frombuffer(payload, "<i8", n, 4 + 8 * n).astype(np.int64)
            vs = np.frombuffer(payload, "<f8", n, 4 + 8 * (cols - 1) * n).astype(np.float64)
            if cols == 3:
                return SamplesRecord(refs, ts, vs)
            st = np.frombuffer(payload, "<i8", n, 4 + 16 * n).astype(np.int64)
            return SamplesRecord(refs, ts, vs, st)
        if rtype == TYPE_SERIES:
            return _decode_series(payload)
    except (struct.error, ValueError) as e:
        raise CorruptionError(f"bad record: {e}") from None
    raise CorruptionError(f"unknown record type {rtype}")


def _decode_series(payload: bytes | memoryview) -> SeriesRecord:
    (n,) = _U32.unpack_from(payload, 0)
    off = 4
    refs = np.frombuffer(payload, "<u8", n, off).astype(np.uint64)
    off += 8 * n
    nstr = np.frombuffer(payload, "<u4", n, off).astype(np.int64)
    off += 4 * n
    total = int(nstr.sum())
    lens = np.frombuffer(payload, "<u4", total, off).astype(np.int64)
    off += 4 * total
    blob = bytes(payload[off:])
    if len(blob) != int(lens.sum()):
        raise CorruptionError("series record: bad string blob length")
    ends = np.cumsum(lens).tolist()
    starts = [0, *ends[:-1]] if ends else []
    if blob.isascii():
        text = blob.decode("ascii")
        strs = [text[a:b] for a, b in zip(starts, ends, strict=True)]
    else:
        strs = [blob[a:b].decode("utf-8") for a, b in zip(starts, ends, strict=True)]
    labels: list[Labels] = []
    pos = 0
    for k in nstr.tolist():
        labels.append(Labels.from_flat(tuple(strs[pos : pos + k])))
        pos += k
    return SeriesRecord(refs, labels)


def iter_records(buf: bytes | memoryview) -> tuple[list[Record], int, str | None]:
    """Decode records from the start of ``buf``. Returns (records, offset of the first byte not
    consumed, reason the scan stopped early or None at a clean end)."""
    out: list[Record] = []
    off = 0
    size = len(buf)
    while off < size:
        if size - off < HEADER_SIZE:
            return out, off, "torn record header"
        rtype, length, crc = HEADER.unpack_from(buf, off)
        if rtype not in TYPES:
            return out, off, "zero-filled or invalid record type" if rtype == 0 else "bad type"
        end = off + HEADER_SIZE + length
        if end > size:
            return out, off, "torn record"
        payload = buf[off + HEADER_SIZE : end]
        if zlib.crc32(payload, zlib.crc32(bytes((rtype,)))) != crc:
            return out, off, "checksum mismatch"
        try:
            out.append(decode_payload(rtype, payload))
        except CorruptionError as e:
            return out, off, str(e)
        off = end
    return out, off, None
