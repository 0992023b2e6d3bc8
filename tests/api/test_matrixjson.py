"""The vectorised matrix/vector JSON writer against the per-value reference formatting."""

from __future__ import annotations

import json

import numpy as np
import orjson

from omtsdb.api.envelope import ts_json
from omtsdb.api.matrixjson import (
    _grid_heads,
    matrix_json,
    timestamps_body,
    value_tokens,
    vector_json,
)
from omtsdb.model.exposition.floats import format_json_sample


def _samples(vs: np.ndarray) -> list[str]:
    return [t.decode() for t in value_tokens(vs)]


def _values() -> np.ndarray:
    rng = np.random.default_rng(7)
    parts = [rng.random(20) * 10.0**e for e in range(-320, 308, 3)]
    parts += [-rng.random(20) * 10.0**e for e in range(-30, 30)]
    parts.append(np.round(rng.random(500) * 1e5, 2))
    parts.append(rng.integers(-(2**62), 2**62, 500).astype(np.float64))
    parts.append(rng.integers(0, 2**63, 2000, dtype=np.int64).view(np.float64))
    special = [0.0, -0.0, np.nan, np.inf, -np.inf, 5e-324, 1e-6, 1e-5, 1e16, 1e21, 0.1, 1.0]
    parts.append(np.array(special))
    return np.concatenate(parts)


def test_sample_strings_match_reference() -> None:
    vs = _values()
    assert _samples(vs) == [format_json_sample(v) for v in vs.tolist()]


def test_timestamp_strings_match_reference() -> None:
    rng = np.random.default_rng(3)
    for ms in (
        rng.integers(0, 10**10, 300) * 1000,
        np.concatenate([rng.integers(-(10**13), 10**13, 300), [0, 1, -1, 999, -1000, 1500]]),
    ):
        assert timestamps_body(ms).decode().split(",") == [ts_json(t) for t in ms.tolist()]


def test_matrix_json_layout() -> None:
    metrics = [orjson.dumps({"a": "1"}), orjson.dumps({"a": "2"}), orjson.dumps({"a": "3"})]
    lens = np.array([2, 0, 1])
    ts = np.array([1000, 2500, 3000])
    vs = np.array([1.0, np.nan, 1e-7])
    got = json.loads(matrix_json(metrics, lens, ts, vs))
    assert got == [
        {"metric": {"a": "1"}, "values": [[1, "1"], [2.5, "NaN"]]},
        {"metric": {"a": "2"}, "values": []},
        {"metric": {"a": "3"}, "values": [[3, "1e-07"]]},
    ]
    assert matrix_json([], np.empty(0, np.int64), ts[:0], vs[:0]) == b"[]"


def test_vector_json_layout() -> None:
    metrics = [orjson.dumps({}), orjson.dumps({"x": "y"})]
    got = json.loads(vector_json(metrics, np.array([1001, 2000]), np.array([-0.0, 2.5])))
    assert got == [
        {"metric": {}, "value": [1.001, "-0"]},
        {"metric": {"x": "y"}, "value": [2, "2.5"]},
    ]


def test_value_tokens_small_and_large_agree() -> None:
    vs = _values()
    big = value_tokens(vs)
    small = [t for i in range(0, vs.size, 10) for t in value_tokens(vs[i : i + 10])]
    assert big == small


def _reference(metrics: list[bytes], lens: list[int], ts: np.ndarray, vs: np.ndarray) -> str:
    out, at = [], 0
    for m, n in zip(metrics, lens, strict=True):
        pts = ",".join(
            f'[{ts_json(t)},"{format_json_sample(v)}"]'
            for t, v in zip(ts[at : at + n].tolist(), vs[at : at + n].tolist(), strict=True)
        )
        out.append(f'{{"metric":{m.decode()},"values":[{pts}]}}')
        at += n
    return "[" + ",".join(out) + "]"


def test_matrix_json_matches_per_point_reference() -> None:
    rng = np.random.default_rng(5)
    vs = _values()
    rng.shuffle(vs)
    lens = rng.integers(0, 60, 400)
    lens[-1] += vs.size - lens.sum() if vs.size > lens.sum() else 0
    lens = lens[np.cumsum(lens) <= vs.size]
    n = int(lens.sum())
    ts = np.concatenate([np.sort(rng.integers(-(10**12), 10**13, k)) for k in lens.tolist()])
    ts[::5] -= ts[::5] % 1000
    metrics = [orjson.dumps({"i": str(i)}) for i in range(lens.size)]
    got = matrix_json(metrics, lens, ts.astype(np.int64), vs[:n])
    assert got.decode() == _reference(metrics, lens.tolist(), ts, vs[:n])
    one = vector_json(metrics[:n], ts[: len(metrics)], vs[: len(metrics)])
    assert json.loads(one) == [
        {"metric": json.loads(m), "value": [json.loads(ts_json(t)), format_json_sample(v)]}
        for m, t, v in zip(metrics, ts.tolist(), vs.tolist(), strict=False)
    ]


def test_range_grid_answers_match_reference() -> None:
    """Series on one step grid (the shape of every range query's answer) take the grid path;
    a gap or an off-grid time falls back; both write the reference text."""
    rng = np.random.default_rng(9)
    start, step = 1_700_000_000_123, 15_000
    spans = [(0, 40), (3, 37), (10, 1), (0, 0), (39, 1), (5, 30)]
    ts = np.concatenate([start + step * np.arange(a, a + n) for a, n in spans]).astype(np.int64)
    vs = rng.random(ts.size) * 100
    lens = [n for _, n in spans]
    metrics = [orjson.dumps({"s": str(i)}) for i in range(len(spans))]
    assert _grid_heads(ts, np.array(lens)) is not None
    assert _grid_heads(np.delete(ts, 50), np.array(lens) - [0, 1, 0, 0, 0, 0]) is None
    for t in (ts, np.delete(ts, 50), np.where(np.arange(ts.size) == 7, ts + 1, ts)):
        ls = list(lens)
        if t.size < ts.size:
            ls[1] -= 1
        got = matrix_json(metrics, np.array(ls), t, vs[: t.size])
        assert got.decode() == _reference(metrics, ls, t, vs[: t.size])
