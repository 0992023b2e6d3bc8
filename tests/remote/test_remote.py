"""Remote write 1.0/2.0, remote read, text import, OTLP and metadata through a real aiohttp
server on loopback, with requests encoded here."""

from __future__ import annotations

import asyncio
import gzip
import json
import math
import struct
from collections.abc import Awaitable, Callable
from typing import Any

import numpy as np
import pytest
from aiohttp.test_utils import TestClient, TestServer

from omtsdb.api.services import APIOptions
from omtsdb.compose import build_app
from omtsdb.model import Labels
from omtsdb.model.matchers import Matcher
from omtsdb.model.samples import STALE_NAN_BITS
from omtsdb.promql.engine import Engine
from omtsdb.remote.build import read_request, snappy, write_request_v1, write_request_v2
from omtsdb.remote.protoload import load
from omtsdb.remote.wire import put_uvarint, snappy_decode, uvarint
from omtsdb.remote.xor import crc32c, decode_chunk
from omtsdb.tsdb.db import DB

PB = load("prometheus.proto")
OT = load("otlp_metrics.proto")
T0 = 1_700_000_000_000
RW2_CT = "application/x-protobuf;proto=io.prometheus.write.v2.Request"
Client = TestClient[Any, Any]


def run(
    fn: Callable[[Client, DB], Awaitable[None]], engine: Engine | None = None, **opts: Any
) -> DB:
    db = DB.open(None)

    async def main() -> None:
        app = build_app(db, engine or Engine(), APIOptions(**opts))
        client: Client = TestClient(TestServer(app, host="127.0.0.1"))
        await client.start_server()
        try:
            await fn(client, db)
        finally:
            await client.close()

    asyncio.run(main())
    return db


def samples(db: DB, name: str, **labels: str) -> dict[Labels, list[tuple[int, float]]]:
    ms = [Matcher.eq("__name__", name)] + [Matcher.eq(k, v) for k, v in labels.items()]
    out = {}
    for s in db.querier(0, 2**62).select(ms, 0, 2**62):
        out[s.labels] = list(zip(s.ts.tolist(), s.vs.tolist(), strict=True))
    return out


async def post(c: Client, path: str, body: bytes, **headers: str) -> tuple[int, bytes, Any]:
    headers.setdefault("Content-Type", "application/x-protobuf")
    r = await c.post(path, data=body, headers=headers)
    return r.status, await r.read(), r.headers


def node_series(n: int, t: int, v0: float = 0.0) -> list[Any]:
    return [
        (
            {"__name__": f"node_m{i % 7}", "instance": f"h{i // 7}:9100", "job": "node"},
            [(t, v0 + i)],
        )
        for i in range(n)
    ]


# -- remote write 1.0 ------------------------------------------------------------------------
def test_rw1_round_trip_fast_and_slow_paths() -> None:
    async def go(c: Client, db: DB) -> None:
        for k in range(3):  # the 2nd and 3rd requests go through the label-section cache
            body = snappy(write_request_v1(node_series(50, T0 + k * 1000, float(k))))
            st, text, _ = await post(c, "/api/v1/write", body, **{"Content-Encoding": "snappy"})
            assert st == 204, text
        # several samples per series, a zero value and a stale marker: the general decoder
        stale = struct.unpack("<d", struct.pack("<Q", STALE_NAN_BITS))[0]
        body = write_request_v1(
            [
                (
                    {"__name__": "node_m0", "instance": "h0:9100", "job": "node"},
                    [(T0 + 3000, 0.0), (T0 + 4000, stale)],
                )
            ]
        )
        st, text, _ = await post(c, "/api/v1/write", snappy(body))
        assert st == 204, text
        got = samples(db, "node_m0", instance="h0:9100")
        ((lb, pts),) = got.items()
        assert lb == Labels({"__name__": "node_m0", "instance": "h0:9100", "job": "node"})
        assert [t for t, _ in pts] == [T0, T0 + 1000, T0 + 2000, T0 + 3000, T0 + 4000]
        assert [v for _, v in pts[:4]] == [0.0, 1.0, 2.0, 0.0]
        assert struct.pack("<d", pts[4][1]) == struct.pack("<Q", STALE_NAN_BITS)
        assert sum(len(v) for v in samples(db, "node_m3").values()) == 7 * 3
        # values through the fast path are exact
        got = samples(db, "node_m6", instance="h6:9100")
        assert [v for _, v in next(iter(got.values()))] == [48.0, 49.0, 50.0]

    run(go)


def test_rw1_metadata_served_by_api() -> None:
    async def go(c: Client, db: DB) -> None:
        body = write_request_v1(
            [],
            [
                ("node_cpu_seconds_total", 1, "Seconds the CPUs spent.", ""),
                ("node_load1", 2, "1m load average.", ""),
                ("node_load1", 2, "1m load average (new).", ""),
            ],
        )
        st, _, _ = await post(c, "/api/v1/write", snappy(body))
        assert st == 204
        r = await c.get("/api/v1/metadata")
        data = (await r.json())["data"]
        assert data["node_cpu_seconds_total"] == [
            {"type": "counter", "help": "Seconds the CPUs spent.", "unit": ""}
        ]
        assert len(data["node_load1"]) == 2
        r = await c.get(
            "/api/v1/metadata", params={"limit_per_metric": "1", "metric": "node_load1"}
        )
        assert (await r.json())["data"] == {
            "node_load1": [{"type": "gauge", "help": "1m load average.", "unit": ""}]
        }
        r = await c.get("/api/v1/metadata", params={"limit": "0"})
        assert (await r.json())["data"] == {}
        r = await c.get("/api/v1/metadata", params={"limit": "1"})
        assert len((await r.json())["data"]) == 1
        r = await c.get("/api/v1/metadata", params={"limit": "x"})
        assert r.status == 400 and (await r.json())["error"] == "limit must be a number"

    run(go)


@pytest.mark.parametrize(
    "headers,status",
    [
        ({"Content-Type": "application/json"}, 415),
        ({"Content-Type": "application/x-protobuf;proto=foo.Bar"}, 415),
        ({"Content-Encoding": "gzip"}, 415),
        ({"Content-Type": "application/x-protobuf", "Content-Encoding": "snappy"}, 204),
        ({"Content-Type": "application/x-protobuf;proto=prometheus.WriteRequest"}, 204),
    ],
)
def test_rw_content_negotiation(headers: dict[str, str], status: int) -> None:
    async def go(c: Client, db: DB) -> None:
        body = snappy(write_request_v1(node_series(2, T0)))
        st, _, _ = await post(c, "/api/v1/write", body, **headers)
        assert st == status

    run(go)


def test_rw1_bad_input_is_400_fast() -> None:
    async def go(c: Client, db: DB) -> None:
        good = write_request_v1(node_series(20, T0))
        # snappy header claiming 2**40 bytes: refused before any allocation
        st, text, _ = await post(c, "/api/v1/write", put_uvarint(2**40) + b"\x00" * 10)
        assert st == 400 and b"exceeds the limit" in text
        st, text, _ = await post(c, "/api/v1/write", b"not snappy at all")
        assert st == 400
        st, text, _ = await post(c, "/api/v1/write", snappy(good[: len(good) // 2 + 3]))
        assert st == 400 and b"decoding" in text
        st, text, _ = await post(c, "/api/v1/write", b"\xff" * 100)
        assert st == 400
        assert samples(db, "node_m0") == {}

    run(go)


def test_rw_body_over_limit_is_400() -> None:
    async def go(c: Client, db: DB) -> None:
        st, text, _ = await post(c, "/api/v1/write", b"\x00" * (33 * 2**20))
        assert st == 400 and b"exceeds the limit" in text

    run(go)


def test_rw1_out_of_order_and_duplicates_are_400_and_rolled_back() -> None:
    async def go(c: Client, db: DB) -> None:
        st, _, _ = await post(
            c, "/api/v1/write", snappy(write_request_v1(node_series(3, T0 + 5000)))
        )
        assert st == 204
        late = [*node_series(3, T0), ({"__name__": "fresh", "job": "x"}, [(T0, 1.0)])]
        st, text, _ = await post(c, "/api/v1/write", snappy(write_request_v1(late)))
        assert st == 400 and b"out of order" in text
        assert samples(db, "fresh") == {}  # the whole request was rolled back
        dup = node_series(3, T0 + 5000, v0=7.0)
        st, text, _ = await post(c, "/api/v1/write", snappy(write_request_v1(dup)))
        assert st == 400 and b"duplicate" in text
        same = node_series(3, T0 + 5000)  # an exact re-send is fine (retries)
        st, _, _ = await post(c, "/api/v1/write", snappy(write_request_v1(same)))
        assert st == 204
        future = node_series(1, T0 + 10**12)
        st, text, _ = await post(c, "/api/v1/write", snappy(write_request_v1(future)))
        assert st == 400 and b"out of bounds" in text

    run(go)


def test_rw1_invalid_labels_400_rest_written() -> None:
    async def go(c: Client, db: DB) -> None:
        wr = PB["WriteRequest"]()
        ts = wr.timeseries.add()
        ts.labels.add(name="job", value="nameless")
        ts.samples.add(timestamp=T0, value=1)
        ts = wr.timeseries.add()
        ts.labels.add(name="__name__", value="dup")
        ts.labels.add(name="a", value="1")
        ts.labels.add(name="a", value="2")
        ts.samples.add(timestamp=T0, value=1)
        ts = wr.timeseries.add()
        ts.labels.add(name="__name__", value="ok_metric")
        ts.samples.add(timestamp=T0, value=5)
        st, text, _ = await post(c, "/api/v1/write", snappy(wr.SerializeToString()))
        assert st == 400 and b"no metric name" in text and b"duplicate label" in text
        assert list(samples(db, "ok_metric").values()) == [[(T0, 5.0)]]

    run(go)


def test_rw_disabled_is_404() -> None:
    async def go(c: Client, db: DB) -> None:
        st, text, _ = await post(c, "/api/v1/write", snappy(write_request_v1(node_series(1, T0))))
        assert st == 404 and b"--web.enable-remote-write-receiver" in text

    run(go, remote_write_receiver=False)


def test_native_histograms_refused_floats_kept() -> None:
    async def go(c: Client, db: DB) -> None:
        wr = PB["WriteRequest"]()
        ts = wr.timeseries.add()
        ts.labels.add(name="__name__", value="h")
        ts.histograms.add(count_int=3, sum=1.5, schema=0, timestamp=T0)
        ts.samples.add(timestamp=T0, value=2)
        st, text, _ = await post(c, "/api/v1/write", snappy(wr.SerializeToString()))
        assert st == 400 and b"native histogram" in text
        assert list(samples(db, "h").values()) == [[(T0, 2.0)]]

    run(go)


# -- remote write 2.0 ------------------------------------------------------------------------
def test_rw2_round_trip_headers_and_metadata() -> None:
    async def go(c: Client, db: DB) -> None:
        for k in range(2):
            body = write_request_v2(
                node_series(10, T0 + k * 1000), {"node_m1": (2, "m1 help", "bytes")}
            )
            st, text, h = await post(c, "/api/v1/write", snappy(body), **{"Content-Type": RW2_CT})
            assert st == 204, text
            assert h["X-Prometheus-Remote-Write-Samples-Written"] == "10"
            assert h["X-Prometheus-Remote-Write-Histograms-Written"] == "0"
            assert h["X-Prometheus-Remote-Write-Exemplars-Written"] == "0"
        assert sum(len(v) for v in samples(db, "node_m1").values()) == 4
        r = await c.get("/api/v1/metadata", params={"metric": "node_m1"})
        assert (await r.json())["data"] == {
            "node_m1": [{"type": "gauge", "help": "m1 help", "unit": "bytes"}]
        }

    run(go)


def test_rw2_errors() -> None:
    async def go(c: Client, db: DB) -> None:
        v2 = load("write_v2.proto")
        req = v2["Request"](symbols=["", "__name__", "a"])
        req.timeseries.add(labels_refs=[1, 7]).samples.add(timestamp=T0, value=1)
        req.timeseries.add(labels_refs=[1, 2]).samples.add(timestamp=T0, value=1)
        st, text, h = await post(
            c, "/api/v1/write", snappy(req.SerializeToString()), **{"Content-Type": RW2_CT}
        )
        assert st == 400 and b"labels_refs" in text
        assert h["X-Prometheus-Remote-Write-Samples-Written"] == "1"
        bad = v2["Request"](symbols=["x"])
        st, text, h = await post(
            c, "/api/v1/write", snappy(bad.SerializeToString()), **{"Content-Type": RW2_CT}
        )
        assert st == 400 and h["X-Prometheus-Remote-Write-Samples-Written"] == "0"
        st, _, h = await post(
            c, "/api/v1/write", snappy(b"\x2a\x05\x0a"), **{"Content-Type": RW2_CT}
        )
        assert st == 400 and "X-Prometheus-Remote-Write-Samples-Written" in h

    run(go)


# -- remote read ---------------------------------------------------------------------------
def _fill(db: DB) -> None:
    app = db.appender()
    ts = np.arange(T0, T0 + 300 * 15_000, 15_000, dtype=np.int64)
    for i in range(3):
        vs = np.cumsum(np.random.default_rng(i).random(ts.size))
        vs[5] = math.inf
        app.append(Labels({"__name__": "rr", "i": str(i)}), ts, vs)
    app.append(Labels({"__name__": "other"}), ts, np.zeros(ts.size))
    app.commit()


def test_remote_read_samples() -> None:
    async def go(c: Client, db: DB) -> None:
        _fill(db)
        body = read_request(
            [
                (T0, T0 + 100 * 15_000, [(0, "__name__", "rr"), (2, "i", "[01]")]),
                (T0, T0 + 15_000, [(1, "__name__", "rr"), (0, "__name__", "other")]),
            ]
        )
        r = await c.post("/api/v1/read", data=snappy(body))
        assert r.status == 200 and r.headers["Content-Encoding"] == "snappy"
        resp = PB["ReadResponse"].FromString(snappy_decode(await r.read(), 2**30))
        assert len(resp.results) == 2
        first = resp.results[0].timeseries
        assert [{x.name: x.value for x in s.labels} for s in first] == [
            {"__name__": "rr", "i": "0"},
            {"__name__": "rr", "i": "1"},
        ]
        want = db.querier(T0, T0 + 1500_000).select([Matcher.eq("i", "1")], T0, T0 + 1500_000)[0]
        assert [s.timestamp for s in first[1].samples] == want.ts.tolist()
        assert [s.value for s in first[1].samples] == want.vs.tolist()
        assert len(resp.results[1].timeseries) == 1
        r = await c.post("/api/v1/read", data=snappy(read_request([(0, 1, [])], accepted=[7])))
        assert r.status == 400
        r = await c.post("/api/v1/read", data=snappy(read_request([(0, 1, [(2, "a", "(")])])))
        assert r.status == 400
        r = await c.post("/api/v1/read", data=b"garbage")
        assert r.status == 400

    run(go)


def test_remote_read_streamed_chunks() -> None:
    async def go(c: Client, db: DB) -> None:
        _fill(db)
        body = read_request(
            [(T0, T0 + 299 * 15_000, [(2, "__name__", "rr|other")])], accepted=[1, 0]
        )
        r = await c.post("/api/v1/read", data=snappy(body))
        assert r.status == 200
        assert r.headers["Content-Type"] == (
            "application/x-streamed-protobuf; proto=prometheus.ChunkedReadResponse"
        )
        raw = await r.read()
        pos = 0
        got: dict[str, tuple[list[int], list[float]]] = {}
        while pos < len(raw):
            n, pos = uvarint(raw, pos)
            crc = int.from_bytes(raw[pos : pos + 4], "big")
            msg = raw[pos + 4 : pos + 4 + n]
            pos += 4 + n
            assert crc32c(msg) == crc
            cr = PB["ChunkedReadResponse"].FromString(msg)
            assert cr.query_index == 0 and len(cr.chunked_series) == 1
            cs = cr.chunked_series[0]
            key = ",".join(f"{x.name}={x.value}" for x in cs.labels)
            for ch in cs.chunks:
                assert ch.type == 1
                ts, vs = decode_chunk(ch.data)
                assert (ts[0], ts[-1]) == (ch.min_time_ms, ch.max_time_ms) and len(ts) <= 120
                acc = got.setdefault(key, ([], []))
                acc[0].extend(ts)
                acc[1].extend(vs)
        assert sorted(got) == [
            "__name__=other",
            "__name__=rr,i=0",
            "__name__=rr,i=1",
            "__name__=rr,i=2",
        ]
        want = db.querier(0, 2**62).select([Matcher.eq("i", "2")], 0, 2**62)[0]
        assert got["__name__=rr,i=2"] == (want.ts.tolist(), want.vs.tolist())

    run(go)


# -- text import ---------------------------------------------------------------------------
def test_import_prometheus_text() -> None:
    async def go(c: Client, db: DB) -> None:
        text = (
            "# HELP imp_total Imported.\n# TYPE imp_total counter\n"
            f'imp_total{{a="1"}} 5 {T0}\nimp_total{{a="1"}} 6 {T0 + 1000}\nimp_now 3\n'
        )
        st, body, _ = await post(c, "/api/v1/import/prometheus", text.encode())
        assert st == 204, body
        assert list(samples(db, "imp_total").values()) == [[(T0, 5.0), (T0 + 1000, 6.0)]]
        ((_, pts),) = samples(db, "imp_now").items()
        assert len(pts) == 1 and pts[0][0] > T0
        r = await c.get("/api/v1/metadata", params={"metric": "imp_total"})
        assert (await r.json())["data"]["imp_total"][0]["type"] == "counter"
        st, body, _ = await post(
            c,
            "/api/v1/import/prometheus",
            gzip.compress(f"imp_gz 1 {T0}\n".encode()),
            **{"Content-Encoding": "gzip"},
        )
        assert st == 204 and samples(db, "imp_gz")

    run(go)


def test_import_prometheus_bad_input_imports_nothing() -> None:
    async def go(c: Client, db: DB) -> None:
        text = f"good_one 1 {T0}\nbad{{a=1}} 2\n"
        r = await c.post(
            "/api/v1/import/prometheus", data=text.encode(), headers={"Content-Type": "text/plain"}
        )
        assert r.status == 400
        err = (await r.json())["error"]
        assert "line 2, column" in err
        assert samples(db, "good_one") == {}
        r = await c.post("/api/v1/import/prometheus", data=f"x 1 {T0}\nx 2 {T0}\n".encode())
        assert r.status == 400 and "nothing imported" in (await r.json())["error"]
        assert samples(db, "x") == {}

    run(go)


# -- OTLP ----------------------------------------------------------------------------------
def _kv(msg: Any, key: str, value: str) -> None:
    msg.add(key=key).value.string_value = value


def otlp_request() -> bytes:
    req = OT["ExportMetricsServiceRequest"]()
    rm = req.resource_metrics.add()
    for k, v in (
        ("service.name", "api"),
        ("service.namespace", "shop"),
        ("service.instance.id", "i-1"),
        ("host.name", "box"),
    ):
        _kv(rm.resource.attributes, k, v)
    sm = rm.scope_metrics.add()
    t_ns = T0 * 1_000_000
    m = sm.metrics.add(name="http.server.request.duration", unit="s", description="Latency")
    m.histogram.aggregation_temporality = 2
    dp = m.histogram.data_points.add(time_unix_nano=t_ns, count=6, sum=2.5)
    dp.explicit_bounds.extend([0.1, 1.0])
    dp.bucket_counts.extend([1, 3, 2])
    _kv(dp.attributes, "http.method", "GET")
    m = sm.metrics.add(name="requests", unit="1")
    m.sum.aggregation_temporality = 2
    m.sum.is_monotonic = True
    m.sum.data_points.add(time_unix_nano=t_ns, as_int=42)
    m = sm.metrics.add(name="memory.usage", unit="By")
    m.gauge.data_points.add(time_unix_nano=t_ns, as_double=1.5)
    m = sm.metrics.add(name="cpu.utilization", unit="1")
    m.gauge.data_points.add(time_unix_nano=t_ns, as_double=0.25)
    m = sm.metrics.add(name="queue.delta", unit="1")
    m.sum.aggregation_temporality = 1
    m.sum.data_points.add(time_unix_nano=t_ns, as_int=1)
    return bytes(req.SerializeToString())


def test_otlp_translation() -> None:
    async def go(c: Client, db: DB) -> None:
        st, body, _h = await post(
            c,
            "/api/v1/otlp/v1/metrics",
            otlp_request(),
            **{"Content-Type": "application/x-protobuf"},
        )
        assert st == 200, body
        base = {"job": "shop/api", "instance": "i-1"}
        b = samples(db, "http_server_request_duration_seconds_bucket")
        assert {lb.get("le"): pts[0][1] for lb, pts in b.items()} == {
            "0.1": 1.0,
            "1": 4.0,
            "+Inf": 6.0,
        }
        lb = next(iter(b))
        assert lb.get("http_method") == "GET" and lb.get("job") == "shop/api"
        assert list(samples(db, "http_server_request_duration_seconds_sum", **base).values()) == [
            [(T0, 2.5)]
        ]
        assert list(samples(db, "http_server_request_duration_seconds_count", **base).values()) == [
            [(T0, 6.0)]
        ]
        assert list(samples(db, "requests_total", **base).values()) == [[(T0, 42.0)]]
        assert list(samples(db, "memory_usage_bytes", **base).values()) == [[(T0, 1.5)]]
        assert list(samples(db, "cpu_utilization_ratio", **base).values()) == [[(T0, 0.25)]]
        assert samples(db, "queue_delta_ratio") == {} and samples(db, "queue_delta") == {}
        info = samples(db, "target_info")
        assert [lb.to_dict() for lb in info] == [
            {"__name__": "target_info", "host_name": "box", "instance": "i-1", "job": "shop/api"}
        ]
        st, _, _ = await post(c, "/api/v1/otlp/v1/metrics", b"x", **{"Content-Type": "text/plain"})
        assert st == 415
        # OTLP/HTTP JSON as the OpenTelemetry SDKs send it: enums as integers, int64 as
        # strings, exemplars with hex trace ids (not stored)
        doc = {
            "resourceMetrics": [
                {
                    "resource": {
                        "attributes": [{"key": "service.name", "value": {"stringValue": "web"}}]
                    },
                    "scopeMetrics": [
                        {
                            "metrics": [
                                {
                                    "name": "jobs.done",
                                    "unit": "1",
                                    "sum": {
                                        "aggregationTemporality": 2,
                                        "isMonotonic": True,
                                        "dataPoints": [
                                            {
                                                "timeUnixNano": str(T0 * 1_000_000),
                                                "asInt": "7",
                                                "exemplars": [
                                                    {
                                                        "timeUnixNano": str(T0 * 1_000_000),
                                                        "asInt": "1",
                                                        "traceId": "5b8efff798038103d269b633813fc60c",
                                                        "spanId": "eee19b7ec3c1b174",
                                                    }
                                                ],
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
        assert st == 200 and body == b"{}", body
        assert list(samples(db, "jobs_done_total", job="web").values()) == [[(T0, 7.0)]]
        st, _, _ = await post(
            c, "/api/v1/otlp/v1/metrics", b"{not json", **{"Content-Type": "application/json"}
        )
        assert st == 400
        st, _, _ = await post(
            c, "/api/v1/otlp/v1/metrics", b"\x0a\xff", **{"Content-Type": "application/x-protobuf"}
        )
        assert st == 400
        st, _, _ = await post(
            c,
            "/api/v1/otlp/v1/metrics",
            gzip.compress(otlp_request()),
            **{"Content-Type": "application/x-protobuf", "Content-Encoding": "gzip"},
        )
        assert st == 200  # an exact re-send is accepted

    run(go)
