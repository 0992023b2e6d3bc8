"""Block files: ``meta.json``, the ``index`` (sections with CRCs) and ULIDs.

See docs/format/blocks.md. The index is a header listing sections (offset, length, CRC-32) and
the sections themselves, each a flat little-endian array, so that opening a block is a handful
of ``np.frombuffer`` calls.
"""

from __future__ import annotations

import json
import os
import struct
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import zstandard

from omtsdb.errors import CorruptionError

INDEX_MAGIC = b"OMTI"
CHUNKS_MAGIC = b"OMTC"
FORMAT_VERSION = 1
SECTIONS = (
    "symbol_offsets",  # u32 × (nsym + 1): byte offsets into symbols
    "symbols",  # UTF-8, sorted unique label names and values
    "series_offsets",  # u32 × (nseries + 1): offsets (in u32 units) into series_labels
    "series_labels",  # u32 symbol refs: name, value, name, value, ...
    "series_chunks",  # u32 × (nseries + 1): first chunk of each series in the chunk table
    "chunk_table",  # CHUNK_DT × nchunks
    "series_baseline",  # i32 × nseries: baseline index or -1
    "baseline_offsets",  # u64 × (nbase + 1): byte offsets into baselines
    "baselines",  # encoded baselines (omtsdb.tsdb.codec.baseline)
    "postings_keys",  # u64 × nkeys: name_ref << 32 | value_ref, ascending
    "postings_offsets",  # u32 × (nkeys + 1): offsets into postings
    "postings",  # u32 series indices, ascending within a key
)
CHUNK_DT = np.dtype(
    [
        ("mint", "<i8"),
        ("maxt", "<i8"),
        ("off", "<u8"),
        ("len", "<u4"),
        ("n", "<u4"),
        ("tsref", "<i4"),  # row of the chunk whose timestamps this one shares, or -1
        ("flags", "<u4"),  # CHUNK_ST: the chunk carries start timestamps (0 in older blocks)
    ]
)
CHUNK_ST = 1  # chunk_table flag
SEC_ZSTD = 1  # section flag: the stored bytes are one zstd frame (with its content size)
_IHDR = struct.Struct("<4sII")
_SEC = struct.Struct("<QQII")

_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def new_ulid(ms: int | None = None) -> str:
    """A ULID: 48-bit millisecond time and 80 random bits, Crockford base32 (26 chars)."""
    ms = int(time.time() * 1000) if ms is None else ms
    n = (ms & (2**48 - 1)) << 80 | int.from_bytes(os.urandom(10), "big")
    return "".join(_CROCKFORD[(n >> (5 * i)) & 31] for i in range(25, -1, -1))


def is_ulid(name: str) -> bool:
    return len(name) == 26 and all(c in _CROCKFORD for c in name)


def encode_index(sections: dict[str, bytes]) -> bytes:
    hdr_len = _IHDR.size + _SEC.size * len(SECTIONS)
    out = [b""]
    entries = []
    off = hdr_len
    zc = zstandard.ZstdCompressor(level=9)
    for name in SECTIONS:
        data, flags = sections[name], 0
        if len(data) > 64:
            z = zc.compress(data)
            if len(z) < len(data) * 0.9:
                data, flags = z, SEC_ZSTD
        entries.append(_SEC.pack(off, len(data), zlib.crc32(data), flags))
        out.append(data)
        off += len(data)
    out[0] = _IHDR.pack(INDEX_MAGIC, FORMAT_VERSION, len(SECTIONS)) + b"".join(entries)
    return b"".join(out)


def decode_index(buf: bytes) -> dict[str, bytes | memoryview]:
    if len(buf) < _IHDR.size:
        raise CorruptionError("index: short file")
    magic, version, nsec = _IHDR.unpack_from(buf, 0)
    if magic != INDEX_MAGIC:
        raise CorruptionError("index: bad magic")
    if version != FORMAT_VERSION or nsec != len(SECTIONS):
        raise CorruptionError(f"index: unsupported version {version} with {nsec} sections")
    mv = memoryview(buf)
    out: dict[str, bytes | memoryview] = {}
    zd = zstandard.ZstdDecompressor()
    for i, name in enumerate(SECTIONS):
        off, ln, crc, flags = _SEC.unpack_from(buf, _IHDR.size + i * _SEC.size)
        if off + ln > len(buf):
            raise CorruptionError(f"index: section {name} out of bounds")
        data = mv[off : off + ln]
        if zlib.crc32(data) != crc:
            raise CorruptionError(f"index: section {name} checksum mismatch")
        if flags & SEC_ZSTD:
            try:
                out[name] = zd.decompress(data)
            except zstandard.ZstdError as e:
                raise CorruptionError(f"index: section {name}: {e}") from None
        else:
            out[name] = data
    return out


@dataclass(frozen=True, slots=True)
class BlockMeta:
    """``meta.json``. ``max_time`` is exclusive, as in Prometheus's block meta."""

    ulid: str
    min_time: int
    max_time: int
    num_series: int = 0
    num_samples: int = 0
    num_chunks: int = 0
    level: int = 1
    sources: tuple[str, ...] = ()
    parents: tuple[str, ...] = ()
    origin: str = "head"  # "head" (cut from the head), "import", or "compaction"
    files: dict[str, int] = field(default_factory=dict)  # file -> size in bytes

    def to_json(self) -> bytes:
        doc: dict[str, Any] = {
            "ulid": self.ulid,
            "minTime": self.min_time,
            "maxTime": self.max_time,
            "stats": {
                "numSamples": self.num_samples,
                "numSeries": self.num_series,
                "numChunks": self.num_chunks,
            },
            "compaction": {
                "level": self.level,
                "sources": list(self.sources or (self.ulid,)),
                "parents": [{"ulid": p} for p in self.parents],
            },
            "version": FORMAT_VERSION,
            "omtsdb": {"origin": self.origin, "files": self.files},
        }
        return json.dumps(doc, indent=2).encode() + b"\n"

    @classmethod
    def read(cls, path: Path) -> BlockMeta:
        try:
            doc = json.loads(path.read_bytes())
            comp = doc.get("compaction", {})
            st = doc.get("stats", {})
            om = doc.get("omtsdb", {})
            if doc.get("version") != FORMAT_VERSION:
                raise CorruptionError(f"{path}: unsupported block version {doc.get('version')}")
            return cls(
                ulid=str(doc["ulid"]),
                min_time=int(doc["minTime"]),
                max_time=int(doc["maxTime"]),
                num_series=int(st.get("numSeries", 0)),
                num_samples=int(st.get("numSamples", 0)),
                num_chunks=int(st.get("numChunks", 0)),
                level=int(comp.get("level", 1)),
                sources=tuple(comp.get("sources", ())),
                parents=tuple(p["ulid"] for p in comp.get("parents", ())),
                origin=str(om.get("origin", "head")),
                files={str(k): int(v) for k, v in om.get("files", {}).items()},
            )
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise CorruptionError(f"{path}: unreadable block meta: {e}") from None
