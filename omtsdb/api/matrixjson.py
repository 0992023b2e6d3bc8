"""Fast JSON text for vector and matrix answers.

Sample values are written as Prometheus writes them (see ``format_json_sample``): orjson's
shortest round-trip digits are the same digits, so every value orjson writes without an
exponent only loses a trailing ``.0``; values it writes with an exponent, and NaN/Inf (which
it writes as ``null``), take the exact slow path. Whole arrays go through orjson at once, are
cut with array operations and ``split``, and the answer is one ``join`` of per-point texts
gathered by C code (``operator.itemgetter``, list slice assignment), so no Python code runs per
point (except for the rare slow-path values).
"""

from __future__ import annotations

import operator
from collections.abc import Sequence

import numpy as np
import orjson

from omtsdb.model.exposition.floats import format_go_f, format_json_sample, format_json_samples
from omtsdb.model.samples import F64, I64

_NUMPY = orjson.OPT_SERIALIZE_NUMPY
_SMALL = 64  # fewer points than this: plain Python is quicker than the array passes


def _ts_text(ms: int) -> str:
    q, r = divmod(ms, 1000)
    if r == 0:
        return str(q)
    if q < 0:
        return format_go_f(ms / 1000)
    return f"{q}.{r:03d}".rstrip("0")


def timestamps_body(ms: I64) -> bytes:
    """Timestamps in seconds as Prometheus's JSON writes them, comma separated."""
    if not np.any(ms % 1000) and ms.min() >= 0:
        return orjson.dumps(np.ascontiguousarray(ms // 1000, np.int64), option=_NUMPY)[1:-1]
    uniq, inv = np.unique(ms, return_inverse=True)
    texts = [_ts_text(t) for t in uniq.tolist()]
    return ",".join([texts[i] for i in inv.reshape(-1).tolist()]).encode()


def value_tokens(vs: F64) -> list[bytes]:
    """``format_json_sample`` of every value, as bytes: orjson's digits for the whole array,
    the ``.0`` of integral numbers cut with array operations, exponent forms, NaN and Inf
    replaced by their exact text."""
    if vs.size <= _SMALL:
        return [x.encode() for x in format_json_samples(vs.tolist())]
    body = orjson.dumps(np.ascontiguousarray(vs, np.float64), option=_NUMPY)[1:-1]
    u = np.frombuffer(body, np.uint8)
    # ".0" directly before a comma or the end ends an integral number: drop those two bytes
    dots = np.flatnonzero((u[:-2] == 46) & (u[1:-1] == 48) & (u[2:] == 44))
    if u.size >= 2 and u[-2] == 46 and u[-1] == 48:
        dots = np.append(dots, u.size - 2)
    if dots.size:
        keep = np.ones(u.size, np.bool_)
        keep[dots] = False
        keep[dots + 1] = False
        body = u[keep].tobytes()
    toks = body.split(b",")
    if b"e" in body or b"n" in body:
        u = np.frombuffer(body, np.uint8)
        commas = np.flatnonzero(u == 44)
        pos = np.flatnonzero((u == ord("e")) | (u == ord("n")))
        idx = np.unique(np.searchsorted(commas, pos))
        for i, v in zip(idx.tolist(), vs[idx].tolist(), strict=True):
            toks[i] = format_json_sample(v).encode()
    return toks


def _point_heads(ts: I64, lens: I64) -> list[bytes]:
    """For every point, the text between the previous point's value and its own:
    ``"],[<t>,"``; computed once per distinct timestamp and gathered."""
    if ts.size <= _SMALL:
        return [b'"],[' + _ts_text(t).encode() + b',"' for t in ts.tolist()]
    grid = _grid_heads(ts, lens)
    if grid is not None:
        return grid
    uniq, inv = np.unique(ts, return_inverse=True)
    heads = _heads_of(timestamps_body(uniq))
    return list(operator.itemgetter(*inv.reshape(-1).tolist())(heads))


def _heads_of(times: bytes) -> list[bytes]:
    """``"],[<t>,"`` for each of the comma-separated ``times`` (one replace and one split, no
    Python code per time)."""
    return (b'"],[' + times.replace(b",", b',"\n"],[') + b',"').split(b"\n")


def _grid_heads(ts: I64, lens: I64) -> list[bytes] | None:
    """``_point_heads`` for a range query's answer, where every series has points at
    consecutive steps of one grid (``start + k·step``): the heads of the grid are written once
    and each series takes a slice of them. None for any other shape."""
    first = int(ts[0])
    step = int(ts[1]) - first if lens[0] > 1 else 0
    if step <= 0:
        return None
    k = ts - first
    if np.any(k % step):
        return None
    k //= step
    starts = np.concatenate(([0], np.cumsum(lens[:-1])))
    d = np.diff(k)
    d[starts[1:][lens[1:] > 0] - 1] = 1  # a series may start anywhere on the grid
    if int(k.min()) < 0 or int(k.max()) > 4 * ts.size or np.any(d != 1):
        return None
    n_grid = int(k.max()) + 1
    grid = _heads_of(timestamps_body(first + step * np.arange(n_grid)))
    heads: list[bytes] = []
    for k0, n in zip(k[starts[lens > 0]].tolist(), lens[lens > 0].tolist(), strict=True):
        heads += grid[k0 : k0 + n]
    return heads


def _assemble(
    metrics: Sequence[bytes], lens: I64, ts: I64, vs: F64, opening: bytes, close: bytes
) -> bytes:
    """The result array as one ``join`` of per-point texts: each point contributes its head
    (``"],[t,"``) and its value; the first point of a series carries instead what comes
    before it (the closing of the series before, the series' opening, its first time)."""
    heads = _point_heads(ts, lens) if ts.size else []
    pending = b"["  # what is still to be written before the next point
    at = 0
    for i, (m, n) in enumerate(zip(metrics, lens.tolist(), strict=True)):
        if i:
            pending += b","
        if n == 0:
            pending += b'{"metric":' + m + opening + close[2:]
            continue
        heads[at] = pending + b'{"metric":' + m + opening + heads[at][3:]
        at += n
        pending = close
    parts: list[bytes] = [b""] * (2 * ts.size)
    parts[0::2] = heads
    parts[1::2] = value_tokens(vs) if ts.size else []
    return b"".join(parts) + pending + b"]"


def matrix_json(metrics: Sequence[bytes], lens: I64, ts: I64, vs: F64) -> bytes:
    """The ``result`` array of a matrix: series ``i`` has ``metrics[i]`` (its labels as a JSON
    object) and the next ``lens[i]`` points of ``ts``/``vs``."""
    if not len(metrics):
        return b"[]"
    return _assemble(metrics, np.asarray(lens, np.int64), ts, vs, b',"values":[', b'"]]}')


def vector_json(metrics: Sequence[bytes], ts: I64, vs: F64) -> bytes:
    """The ``result`` array of a vector: one sample per series."""
    if not len(metrics):
        return b"[]"
    return _assemble(metrics, np.ones(len(metrics), np.int64), ts, vs, b',"value":', b'"]}')
