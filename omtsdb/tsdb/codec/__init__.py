"""Lossless chunk codec with 24 h baselines (see docs/format/chunks.md)."""

from omtsdb.tsdb.codec.baseline import Baseline, decode_baseline, encode_baseline, learn_baseline
from omtsdb.tsdb.codec.chunk import ChunkInfo, chunk_header, decode_chunk, encode_chunk

__all__ = [
    "Baseline",
    "ChunkInfo",
    "chunk_header",
    "decode_baseline",
    "decode_chunk",
    "encode_baseline",
    "encode_chunk",
    "learn_baseline",
]
