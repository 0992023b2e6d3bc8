"""Fast JSON text for vector and matrix answers.

Sample values are written as Prometheus writes them (see ``format_json_sample``): orjson's
shortest round-trip digits are the same digits, so every value orjson writes without an
exponent only loses a trailing ``.0``; values it writes with an exponent, and NaN/Inf (which
it writes as ``null``), take the exact slow path. Whole arrays go through orjson at once and
are cut and glued with ``bytes.replace``/``split``/``join``, so no Python code runs per point
(except for the rare slow-path values).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import orjson

from omtsdb.model.exposition.floats import format_go_f, format_json_sample, format_json_samples
from omtsdb.model.samples import F64, I64

_NUMPY = orjson.OPT_SERIALIZE_NUMPY
_SEP = b"\x00"  # never in orjson's number output
_SMALL = 64  # fewer points than this: plain Python is quicker than the array passes


def _ts_text(ms: int) -> str:
    q, r = divmod(ms, 1000)
    if r == 0:
        return str(q)
    if q < 0:
        return format_go_f(ms / 1000)
    return f"{q}.{r:03d}".rstrip("0")


def _runs(body: bytes) -> tuple[I64, I64]:
    """Start and length of each comma-separated element of ``body``."""
    commas = np.flatnonzero(np.frombuffer(body, np.uint8) == 44)
    starts = np.concatenate(([0], commas + 1))
    lens = np.concatenate((commas, [len(body)])) - starts
    return starts, lens


def _fill(idx: np.ndarray, col: int, starts: I64, lens: I64, width: int) -> None:
    """Columns ``col:col+width`` of ``idx``: byte indices of each element; past its end, the
    index of the NUL byte that follows it."""
    view = idx[:, col : col + width]
    np.add(starts[:, None], np.arange(width, dtype=idx.dtype), out=view)
    if int(lens.min()) < width:
        np.minimum(view, (starts + lens)[:, None], out=view)


def timestamps_body(ms: I64) -> bytes:
    """Timestamps in seconds as Prometheus's JSON writes them, comma separated."""
    if not np.any(ms % 1000) and ms.min() >= 0:
        return orjson.dumps(np.ascontiguousarray(ms // 1000, np.int64), option=_NUMPY)[1:-1]
    uniq, inv = np.unique(ms, return_inverse=True)
    texts = [_ts_text(t) for t in uniq.tolist()]
    return ",".join([texts[i] for i in inv.reshape(-1).tolist()]).encode()


def samples_body(vs: F64) -> tuple[bytes, dict[int, bytes]]:
    """``format_json_sample`` of every value, comma separated, except the values at the
    indices of the returned map (exponent forms, NaN, Inf), which map to their exact text."""
    body = orjson.dumps(np.ascontiguousarray(vs, np.float64), option=_NUMPY)
    # orjson writes integral values as "1.0", Go as "1"; ".0," only ever ends a number
    body = body.replace(b".0,", b",")
    body = body[:-3] + b"]" if body.endswith(b".0]") else body
    body = body[1:-1]
    slow: dict[int, bytes] = {}
    if b"e" in body or b"n" in body:
        u = np.frombuffer(body, np.uint8)
        commas = np.flatnonzero(u == 44)
        pos = np.flatnonzero((u == ord("e")) | (u == ord("n")))
        idx = np.unique(np.searchsorted(commas, pos))
        for i, v in zip(idx.tolist(), vs[idx].tolist(), strict=True):
            slow[i] = format_json_sample(v).encode()
    return body, slow


def points(ts: I64, vs: F64) -> tuple[bytes, I64]:
    """``[t,"v"],`` for every point back to back, and each point's end offset.

    Every point is one row of a byte matrix gathered from the orjson texts (shorter texts
    padded with NUL bytes, dropped at the end), so the work is a few whole-array passes."""
    if ts.size <= _SMALL:
        texts = [
            f'[{_ts_text(t)},"{v}"],'
            for t, v in zip(ts.tolist(), format_json_samples(vs.tolist()), strict=True)
        ]
        return "".join(texts).encode(), np.cumsum([len(x) for x in texts], dtype=np.int64)
    tb = timestamps_body(ts)
    vb, slow = samples_body(vs)
    ts_at, ts_len = _runs(tb)
    vs_at, vs_len = _runs(vb)
    vs_at += len(tb) + 1
    # the texts, each followed by a NUL (commas become NULs), then the literals
    parts = [tb, vb]
    if slow:
        where = np.fromiter(slow, np.int64, len(slow))
        sizes = np.fromiter((len(x) for x in slow.values()), np.int64, len(slow))
        vs_at[where] = len(tb) + len(vb) + 2 + np.concatenate(([0], np.cumsum(sizes + 1)[:-1]))
        vs_len[where] = sizes
        parts.extend(slow.values())
    text = _SEP.join(parts) + _SEP
    src = np.frombuffer(text + b'[,"]', np.uint8).copy()
    src[: len(text)][src[: len(text)] == 44] = 0
    n0, lb, comma, quote, rb = len(text) - 1, len(text), len(text) + 1, len(text) + 2, len(text) + 3
    wt, wv = int(ts_len.max()), int(vs_len.max())
    row = np.full(wt + wv + 6, n0, np.intp)
    lits = [0, wt + 1, wt + 2, wt + wv + 3, wt + wv + 4, wt + wv + 5]
    row[lits] = (lb, comma, quote, quote, rb, comma)
    idx = np.empty((ts.size, row.size), np.intp)
    idx[...] = row
    _fill(idx, 1, ts_at, ts_len, wt)
    _fill(idx, wt + 3, vs_at, vs_len, wv)
    ends: I64 = np.cumsum(ts_len + vs_len + 6)
    flat = src[idx].reshape(-1)
    return flat[flat != 0].tobytes(), ends


def matrix_json(metrics: Sequence[bytes], lens: I64, ts: I64, vs: F64) -> bytes:
    """The ``result`` array of a matrix: series ``i`` has ``metrics[i]`` (its labels as a JSON
    object) and the next ``lens[i]`` points of ``ts``/``vs``."""
    if not len(metrics):
        return b"[]"
    if ts.size:
        raw, ends = points(ts, vs)
    else:
        raw, ends = b"", np.empty(0, np.int64)
    bounds = np.concatenate(([0], ends))[np.concatenate(([0], np.cumsum(lens)))].tolist()
    parts = []
    for i, m in enumerate(metrics):
        a, b = bounds[i], bounds[i + 1]
        parts.append(b'{"metric":' + m + b',"values":[' + raw[a : max(a, b - 1)] + b"]}")
    return b"[" + b",".join(parts) + b"]"


def vector_json(metrics: Sequence[bytes], ts: I64, vs: F64) -> bytes:
    """The ``result`` array of a vector: one sample per series."""
    if not len(metrics):
        return b"[]"
    raw, ends = points(ts, vs)
    bounds = [0, *ends.tolist()]
    parts = [
        b'{"metric":' + m + b',"value":' + raw[bounds[i] : bounds[i + 1] - 1] + b"}"
        for i, m in enumerate(metrics)
    ]
    return b"[" + b",".join(parts) + b"]"
