"""The optional start-timestamp stream of a chunk (flag ``FLAG_ST``; see docs/format/chunks.md).

Start timestamps follow one of two patterns: a cumulative series keeps one start time for many
samples (``st[i] == st[i-1]``), a delta series starts each sample where the previous one ended
(``st[i] == t[i-1]``). The stream stores the first start time raw and the rest as residuals
against whichever of the two predictions leaves the smaller packed integers, so both patterns
cost a few bytes per chunk and anything else (unknown zeros, restarts) stays lossless.

Layout: ``predictor u8 (0: previous start, 1: previous timestamp) | st[0] i64 |
packed zigzag(st[i] - prediction[i]) for i >= 1``.
"""

from __future__ import annotations

import struct

import numpy as np

from omtsdb.errors import CorruptionError
from omtsdb.model.samples import I64
from omtsdb.tsdb.codec.ints import pack_u64, unpack_u64, unzigzag, zigzag

PRED_PREV_ST, PRED_PREV_T = 0, 1
_HEAD = struct.Struct("<Bq")


def encode_starts(ts: I64, st: I64) -> bytes:
    """The stream for ``st`` (same length as ``ts``, at least one sample)."""
    first = _HEAD.pack(PRED_PREV_ST, int(st[0]))
    if st.size == 1:
        return first + pack_u64(np.zeros(0, np.uint64))
    by_st = pack_u64(zigzag(st[1:] - st[:-1]))
    by_t = pack_u64(zigzag(st[1:] - ts[:-1]))
    if len(by_t) < len(by_st):
        return _HEAD.pack(PRED_PREV_T, int(st[0])) + by_t
    return first + by_st


def decode_starts(buf: bytes | memoryview, ts: I64) -> I64:
    n = ts.size
    if len(buf) < _HEAD.size:
        raise CorruptionError("chunk: short start timestamps")
    pred, first = _HEAD.unpack_from(buf, 0)
    out = np.empty(n, np.int64)
    if n == 0:
        return out
    out[0] = first
    if n == 1:
        return out
    resid = unzigzag(unpack_u64(buf[_HEAD.size :], n - 1))
    if pred == PRED_PREV_T:
        np.add(resid, ts[:-1], out=out[1:])
    elif pred == PRED_PREV_ST:
        np.cumsum(resid, out=out[1:])
        out[1:] += first
    else:
        raise CorruptionError(f"chunk: unknown start timestamp predictor {pred}")
    return out
