"""Vectorised JSON text for large vector and matrix answers.

Sample values are written as Prometheus writes them (see ``format_json_sample``): orjson's
shortest round-trip digits are the same digits, so every value orjson writes without an
exponent only loses a trailing ``.0``; values it writes with an exponent, and NaN/Inf (which
it writes as ``null``), take the exact slow path. The text of all points is then assembled in
one byte array by index arithmetic instead of one Python string per point.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import orjson

from omtsdb.model.exposition.floats import format_go_f, format_json_sample
from omtsdb.model.samples import F64, I64

U8 = np.ndarray[tuple[int], np.dtype[np.uint8]]
# A run of strings: one byte buffer, and each string's start and length in it.
Strings = tuple[U8, I64, I64]

_NUMPY = orjson.OPT_SERIALIZE_NUMPY
_COMMA, _DOT, _ZERO = ord(","), ord("."), ord("0")
_E, _N = ord("e"), ord("n")


def _split(buf: bytes) -> Strings:
    """The elements of an orjson-written flat array ``[a,b,...]`` (no nested arrays)."""
    u = np.frombuffer(buf, np.uint8)
    commas = np.flatnonzero(u == _COMMA)
    starts = np.concatenate(([1], commas + 1)).astype(np.int64)
    ends = np.concatenate((commas, [u.size - 1])).astype(np.int64)
    return u, starts, ends - starts


def _append(base: Strings, idx: I64, texts: Sequence[str]) -> Strings:
    """Replace the strings at ``idx`` by ``texts`` (appended to the buffer)."""
    u, starts, lens = base
    extra = "".join(texts).encode()
    xl = np.fromiter((len(t) for t in texts), np.int64, len(texts))
    xs = np.concatenate(([0], np.cumsum(xl)[:-1])) + u.size
    starts, lens = starts.copy(), lens.copy()
    starts[idx] = xs
    lens[idx] = xl
    return np.concatenate((u, np.frombuffer(extra, np.uint8))), starts, lens


def sample_strings(vs: F64) -> Strings:
    """``format_json_sample`` of every value, as a run of strings."""
    if vs.size == 0:
        return np.empty(0, np.uint8), np.empty(0, np.int64), np.empty(0, np.int64)
    u, starts, lens = _split(orjson.dumps(np.ascontiguousarray(vs, np.float64), option=_NUMPY))
    ends = starts + lens
    # drop a trailing ".0" (orjson writes integral values as "1.0", Go as "1")
    dot0 = (lens >= 3) & (u[ends - 2] == _DOT) & (u[ends - 1] == _ZERO)
    lens = lens - 2 * dot0
    # exponent forms and null (NaN, +-Inf): the exact slow path
    special = (u == _E) | (u == _N)
    if special.any():
        cs = np.concatenate(([0], np.cumsum(special)))
        slow = np.flatnonzero(cs[ends] != cs[starts])
        if slow.size:
            texts = [format_json_sample(v) for v in vs[slow].tolist()]
            return _append((u, starts, lens), slow, texts)
    return u, starts, lens


def _ts_text(ms: int) -> str:
    q, r = divmod(ms, 1000)
    if r == 0:
        return str(q)
    if q < 0:
        return format_go_f(ms / 1000)
    return f"{q}.{r:03d}".rstrip("0")


def timestamp_strings(ms: I64) -> Strings:
    """Timestamps in seconds as Prometheus's JSON writes them, as a run of strings."""
    if ms.size == 0:
        return np.empty(0, np.uint8), np.empty(0, np.int64), np.empty(0, np.int64)
    if not np.any(ms % 1000) and ms.min() >= 0:
        return _split(orjson.dumps(np.ascontiguousarray(ms // 1000, np.int64), option=_NUMPY))
    uniq, inv = np.unique(ms, return_inverse=True)
    texts = [_ts_text(t) for t in uniq.tolist()]
    lens = np.fromiter((len(t) for t in texts), np.int64, len(texts))
    starts = np.concatenate(([0], np.cumsum(lens)[:-1]))
    u = np.frombuffer("".join(texts).encode(), np.uint8)
    inv = inv.reshape(-1)
    return u, starts[inv], lens[inv]


def _place(out: U8, dst: I64, src: Strings) -> None:
    """Copy string ``k`` of ``src`` to ``out[dst[k]:]``."""
    u, starts, lens = src
    total = int(lens.sum())
    if total == 0:
        return
    first = np.concatenate(([0], np.cumsum(lens)[:-1]))
    within = np.arange(total, dtype=np.int64) - np.repeat(first, lens)
    out[np.repeat(dst, lens) + within] = u[np.repeat(starts, lens) + within]


def points(ts: Strings, vs: Strings, head: bytes, tail: bytes) -> tuple[U8, I64]:
    """``head + ts[k] + ',"' + vs[k] + '"' + tail`` for every point k, back to back in one
    buffer; returns it and each point's end offset."""
    mid = b',"'
    end = b'"' + tail
    n = ts[1].size
    size = ts[2] + vs[2] + (len(head) + len(mid) + len(end))
    ends = np.cumsum(size)
    begin = ends - size
    out = np.empty(int(ends[-1]) if n else 0, np.uint8)
    for off, lit in ((begin, head), (begin + len(head) + ts[2], mid), (ends - len(end), end)):
        for j, ch in enumerate(lit):
            out[off + j] = ch
    _place(out, begin + len(head), ts)
    _place(out, begin + len(head) + ts[2] + len(mid), vs)
    return out, ends


def matrix_json(metrics: Sequence[bytes], lens: I64, ts: I64, vs: F64) -> bytes:
    """The ``result`` array of a matrix: series ``i`` has ``metrics[i]`` (its labels as a JSON
    object) and the next ``lens[i]`` points of ``ts``/``vs``."""
    if not len(metrics):
        return b"[]"
    buf, ends = points(timestamp_strings(ts), sample_strings(vs), b"[", b"],")
    raw = buf.tobytes()
    bounds = np.concatenate(([0], ends))[np.concatenate(([0], np.cumsum(lens)))].tolist()
    parts = []
    for i, m in enumerate(metrics):
        a, b = bounds[i], bounds[i + 1]
        parts.append(b'{"metric":' + m + b',"values":[' + raw[a : b - 1] + b"]}")
    return b"[" + b",".join(parts) + b"]"


def vector_json(metrics: Sequence[bytes], ts: I64, vs: F64) -> bytes:
    """The ``result`` array of a vector: one sample per series."""
    if not len(metrics):
        return b"[]"
    buf, ends = points(timestamp_strings(ts), sample_strings(vs), b"[", b"]")
    raw = buf.tobytes()
    bounds = [0, *ends.tolist()]
    parts = [
        b'{"metric":' + m + b',"value":' + raw[bounds[i] : bounds[i + 1]] + b"}"
        for i, m in enumerate(metrics)
    ]
    return b"[" + b",".join(parts) + b"]"
