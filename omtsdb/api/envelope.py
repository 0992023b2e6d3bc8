"""The Prometheus response envelope and value encoding, and the one error -> status map.

Values are strings as Prometheus writes them: Go's ``strconv.FormatFloat(v, 'f', -1, 64)`` for
scalars, the same with an exponent for tiny or huge vector and matrix samples; timestamps are
JSON numbers in seconds with millisecond precision, written without a trailing ``.0``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import orjson

from omtsdb.api.matrixjson import matrix_json, vector_json
from omtsdb.errors import OmtsdbError
from omtsdb.model.exposition.floats import format_go_f
from omtsdb.model.labels import Labels, as_valid_utf8
from omtsdb.promql.value import Matrix, QueryStats, Result, Sample, Scalar, String, Vector
from omtsdb.storage.interface import SeriesData

_dumps = orjson.dumps


def ts_json(ms: int) -> str:
    q, r = divmod(ms, 1000)
    if r == 0:
        return str(q)
    if q < 0 and r:
        return format_go_f(ms / 1000)
    return f"{q}.{r:03d}".rstrip("0")


def _str(v: str) -> str:
    return _dumps(v).decode()


# The JSON object of a label set, remembered (label sets repeat from query to query).
_METRIC_MAX = 1 << 16
_METRICS: dict[Labels, bytes] = {}


def _metric(lb: Labels) -> bytes:
    got = _METRICS.get(lb)
    if got is None:
        got = _dumps(dict(lb))
        if len(_METRICS) >= _METRIC_MAX:
            _METRICS.clear()
        _METRICS[lb] = got
    return got


def encode_value(value: Vector | Matrix | Scalar | String) -> tuple[str, bytes]:
    """(resultType, result JSON)."""
    if isinstance(value, Scalar):
        return "scalar", f'[{ts_json(value.t)},"{format_go_f(value.v)}"]'.encode()
    if isinstance(value, String):
        return "string", f"[{ts_json(value.t)},{_str(as_valid_utf8(value.v))}]".encode()
    if value and isinstance(value[0], SeriesData):
        series: list[SeriesData] = value
        lens = np.fromiter((len(s) for s in series), np.int64, len(series))
        ts = np.concatenate([s.ts for s in series])
        vs = np.concatenate([s.vs for s in series])
        metrics = [_metric(s.labels) for s in series]
        return "matrix", matrix_json(metrics, lens, ts, vs)
    if not value:
        return "vector", b"[]"
    samples: list[Sample] = value  # type: ignore[assignment]
    metrics = [_metric(smp.labels) for smp in samples]
    t = np.fromiter((smp.t for smp in samples), np.int64, len(samples))
    v = np.fromiter((smp.v for smp in samples), np.float64, len(samples))
    return "vector", vector_json(metrics, t, v)


def _stats_json(st: QueryStats) -> str:
    return _dumps(
        {
            "timings": {
                "evalTotalTime": st.exec_total_time_s,
                "resultSortTime": st.result_sort_time_s,
                "queryPreparationTime": st.query_preparation_time_s,
                "innerEvalTime": st.inner_eval_time_s,
                "execQueueTime": st.exec_queue_time_s,
                "execTotalTime": st.exec_total_time_s,
            },
            "samples": {
                "totalQueryableSamples": st.total_queryable_samples,
                "peakSamples": st.peak_samples,
            },
        }
    ).decode()


def query_success(res: Result, matrix_for_range: bool = False) -> bytes:
    rtype, body = encode_value(res.value)
    if matrix_for_range and rtype == "vector" and body == b"[]":
        rtype = "matrix"
    tail = ""
    if res.stats is not None:
        tail += f',"stats":{_stats_json(res.stats)}'
    tail += "}"
    if res.warnings:
        tail += f',"warnings":{_dumps(res.warnings).decode()}'
    if res.infos:
        tail += f',"infos":{_dumps(res.infos).decode()}'
    head = f'{{"status":"success","data":{{"resultType":"{rtype}","result":'
    return b"".join((head.encode(), body, tail.encode(), b"}"))


def success(data: Any, warnings: list[str] | None = None) -> bytes:
    env: dict[str, Any] = {"status": "success", "data": data}
    if warnings:
        env["warnings"] = warnings
    return _dumps(env)


def error_status(err: BaseException) -> tuple[int, str, str]:
    """The one map from an exception to (HTTP status, errorType, message)."""
    if isinstance(err, OmtsdbError):
        return err.status, err.error_type, err.message
    return 500, "internal", f"{type(err).__name__}: {err}"


def error_body(err: BaseException) -> tuple[int, bytes]:
    status, etype, msg = error_status(err)
    return status, _dumps({"status": "error", "errorType": etype, "error": as_valid_utf8(msg)})
