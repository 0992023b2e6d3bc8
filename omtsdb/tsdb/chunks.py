"""Head chunk encoding: the head compresses full open chunks with the block codec (no
baseline: baselines are learned when blocks are cut)."""

from __future__ import annotations

from omtsdb.model.samples import F64, I64
from omtsdb.tsdb.codec import decode_chunk, encode_chunk
from omtsdb.tsdb.codec.chunk import decode_chunk_st
from omtsdb.tsdb.codec.ints import fast_packing


def encode(ts: I64, vs: F64, st: I64 | None = None) -> bytes:
    return encode_chunk(ts, vs, None, st=st)


def encode_fast(ts: I64, vs: F64, st: I64 | None = None) -> bytes:
    """A chunk the head closes: cheap packing modes only (it is re-encoded with all modes when
    short chunks are merged, and again when the head is cut into a block)."""
    with fast_packing():
        return encode_chunk(ts, vs, None, st=st)


def decode(buf: bytes) -> tuple[I64, F64]:
    return decode_chunk(buf, None)


def decode_st(buf: bytes) -> tuple[I64, F64, I64 | None]:
    """Timestamps, values and start timestamps (``None`` when the chunk has none)."""
    return decode_chunk_st(buf, None)
