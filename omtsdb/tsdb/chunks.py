"""Head chunk encoding: the head compresses full open chunks with the block codec (no
baseline: baselines are learned when blocks are cut)."""

from __future__ import annotations

from omtsdb.model.samples import F64, I64
from omtsdb.tsdb.codec import decode_chunk, encode_chunk


def encode(ts: I64, vs: F64) -> bytes:
    return encode_chunk(ts, vs, None)


def decode(buf: bytes) -> tuple[I64, F64]:
    return decode_chunk(buf, None)
