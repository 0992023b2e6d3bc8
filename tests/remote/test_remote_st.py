"""Start timestamps arriving by remote write 2.0 and OTLP, stored and used by queries; real
requests to a real aiohttp server on loopback."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

from omtsdb.model import Labels
from omtsdb.model.matchers import Matcher
from omtsdb.promql.engine import Engine, EngineOpts
from omtsdb.remote.build import snappy, write_request_v1, write_request_v2
from omtsdb.remote.protoload import load
from omtsdb.tsdb.db import DB
from tests.remote.test_remote import RW2_CT, T0, Client, post
from tests.remote.test_remote import run as run_api

V2 = load("write_v2.proto")
OT = load("otlp_metrics.proto")
S = 1000


def run(fn: Callable[[Client, DB], Awaitable[None]]) -> None:
    """The API with the remote write receiver, over an in-memory DB."""
    engine = Engine(EngineOpts(enable_experimental_functions=True))
    run_api(fn, engine, remote_write_receiver=True)


def starts(db: DB, name: str) -> dict[Labels, list[tuple[int, float, int]]]:
    """(timestamp, value, start timestamp or 0) of every sample of the series named ``name``."""
    out = {}
    for s in db.querier(0, 2**62).select([Matcher.eq("__name__", name)], 0, 2**62):
        st = s.st.tolist() if s.st is not None else [0] * len(s)
        out[s.labels] = list(zip(s.ts.tolist(), s.vs.tolist(), st, strict=True))
    return out


async def query(c: Client, q: str, t_ms: int) -> list[Any]:
    r = await c.get("/api/v1/query", params={"query": q, "time": str(t_ms / 1000)})
    js = await r.json()
    assert js["status"] == "success", js
    return list(js["data"]["result"])


def test_rw2_sample_start_timestamps_are_stored_and_used() -> None:
    async def go(c: Client, db: DB) -> None:
        # a delta series: each sample starts where the previous one ended
        delta = [(T0 + k * 15 * S, 10.0, T0 + (k - 1) * 15 * S) for k in range(1, 5)]
        cum = [(T0 + k * 15 * S, 5.0 * k, T0) for k in range(1, 5)]  # started at T0
        plain = [(T0 + k * 15 * S, float(k)) for k in range(1, 5)]
        body = write_request_v2(
            [
                ({"__name__": "d_total"}, delta),
                ({"__name__": "c_total"}, cum),
                ({"__name__": "p_total"}, plain),
            ]
        )
        st, text, h = await post(c, "/api/v1/write", snappy(body), **{"Content-Type": RW2_CT})
        assert st == 204, text
        assert h["X-Prometheus-Remote-Write-Samples-Written"] == "12"
        assert list(starts(db, "d_total").values()) == [delta]
        assert list(starts(db, "c_total").values()) == [cum]
        assert list(starts(db, "p_total").values()) == [[(t, v, 0) for t, v in plain]]
        t = T0 + 60 * S
        # 4 deltas of 10, a zero at the cumulative's start T0: no extrapolation guesses
        assert (await query(c, "increase(d_total[1m])", t))[0]["value"][1] == "40"
        assert (await query(c, "increase(c_total[1m])", t))[0]["value"][1] == "20"
        assert (await query(c, "resets(d_total[1m])", t))[0]["value"][1] == "3"
        # remote write 1.0 has no start timestamps: later samples have none
        st, _, _ = await post(
            c, "/api/v1/write", snappy(write_request_v1([({"__name__": "c_total"}, [(t + S, 30)])]))
        )
        assert st == 204
        assert next(iter(starts(db, "c_total").values()))[-1] == (t + S, 30.0, 0)

    run(go)


def test_rw2_legacy_created_timestamp_per_series() -> None:
    async def go(c: Client, db: DB) -> None:
        req = V2["Request"]()
        req.symbols.extend(["", "__name__", "old_total", "new_total"])
        ts = req.timeseries.add(labels_refs=[1, 2], created_timestamp=T0 - 5 * S)
        ts.samples.add(timestamp=T0, value=1)
        ts.samples.add(timestamp=T0 + S, value=2, start_timestamp=T0 - S)  # its own wins
        req.timeseries.add(labels_refs=[1, 3]).samples.add(timestamp=T0, value=1)
        st, text, _ = await post(
            c, "/api/v1/write", snappy(req.SerializeToString()), **{"Content-Type": RW2_CT}
        )
        assert st == 204, text
        assert list(starts(db, "old_total").values()) == [
            [(T0, 1.0, T0 - 5 * S), (T0 + S, 2.0, T0 - S)]
        ]
        assert list(starts(db, "new_total").values()) == [[(T0, 1.0, 0)]]

    run(go)


def _otlp_request(with_start: bool) -> bytes:
    req = OT["ExportMetricsServiceRequest"]()
    rm = req.resource_metrics.add()
    rm.resource.attributes.add(key="service.name").value.string_value = "api"
    rm.resource.attributes.add(key="host.name").value.string_value = "box"
    sm = rm.scope_metrics.add()
    start = (T0 - 30 * S) * 1_000_000 + 999_999 if with_start else 0  # ns: truncated to ms
    m = sm.metrics.add(name="requests", unit="1")
    m.sum.aggregation_temporality = 2
    m.sum.is_monotonic = True
    for k in range(3):
        m.sum.data_points.add(
            start_time_unix_nano=start, time_unix_nano=(T0 + k * 10 * S) * 1_000_000, as_int=k + 1
        )
    m = sm.metrics.add(name="latency", unit="s")
    m.histogram.aggregation_temporality = 2
    dp = m.histogram.data_points.add(
        start_time_unix_nano=start, time_unix_nano=T0 * 1_000_000, count=3, sum=1.5
    )
    dp.explicit_bounds.extend([1.0])
    dp.bucket_counts.extend([2, 1])
    m = sm.metrics.add(name="temperature", unit="Cel")
    m.gauge.data_points.add(start_time_unix_nano=start, time_unix_nano=T0 * 1_000_000, as_double=21)
    return bytes(req.SerializeToString())


def test_otlp_start_time_becomes_st_of_every_sample_of_the_point() -> None:
    async def go(c: Client, db: DB) -> None:
        st, body, _ = await post(c, "/api/v1/otlp/v1/metrics", _otlp_request(True))
        assert st == 200, body
        want_st = T0 - 30 * S
        reqs = list(starts(db, "requests_total").values())
        assert reqs == [[(T0 + k * 10 * S, k + 1.0, want_st) for k in range(3)]]
        for name in ("latency_seconds_bucket", "latency_seconds_sum", "latency_seconds_count"):
            got = starts(db, name)
            assert got and all(pts[0][2] == want_st for pts in got.values()), name
        assert next(iter(starts(db, "temperature_celsius").values()))[0][2] == want_st
        assert next(iter(starts(db, "target_info").values()))[0][2] == 0
        # a zero at the start 30 s before the first point: the whole count, not extrapolated
        got = await query(c, "increase(requests_total[1m])", T0 + 20 * S)
        assert got[0]["value"][1] == "3"
        got = await query(c, "start_timestamp(requests_total)", T0 + 20 * S)
        assert got[0]["value"][1] == str((T0 - 30 * S) // 1000)

    run(go)


def test_otlp_without_start_time_and_json_encoding() -> None:
    async def go(c: Client, db: DB) -> None:
        st, body, _ = await post(c, "/api/v1/otlp/v1/metrics", _otlp_request(False))
        assert st == 200, body
        assert all(p[2] == 0 for pts in starts(db, "requests_total").values() for p in pts)
        doc = {
            "resourceMetrics": [
                {
                    "resource": {},
                    "scopeMetrics": [
                        {
                            "metrics": [
                                {
                                    "name": "jobs",
                                    "sum": {
                                        "aggregationTemporality": 2,
                                        "isMonotonic": True,
                                        "dataPoints": [
                                            {
                                                "startTimeUnixNano": str(T0 * 1_000_000),
                                                "timeUnixNano": str((T0 + S) * 1_000_000),
                                                "asInt": "7",
                                            }
                                        ],
                                    },
                                }
                            ]
                        }
                    ],
                }
            ]
        }
        st, body, _ = await post(
            c,
            "/api/v1/otlp/v1/metrics",
            json.dumps(doc).encode(),
            **{"Content-Type": "application/json"},
        )
        assert st == 200, body
        assert list(starts(db, "jobs_total").values()) == [[(T0 + S, 7.0, T0)]]

    run(go)
