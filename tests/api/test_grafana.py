"""The request sequence Grafana's Prometheus data source sends (pkg/promlib and
packages/grafana-prometheus), replayed against omtsdb with the methods, parameter formats and
fallbacks Grafana uses; each answer must have the shape Grafana parses.

- save & test: ``POST /api/v1/query`` form ``query=1+1&time=4`` (the health check evaluates
  ``1+1`` at the end of a 1 s..4 s range), then build info (POSTed first: Grafana's resource
  client retries with GET on 405/400; no ``features`` means "Prometheus", not Mimir);
- metric browser: label values of ``__name__`` (GET, ``start``/``end`` in whole seconds),
  ``/api/v1/labels`` and ``/api/v1/series`` POSTed as forms with ``match[]`` and ``limit``,
  label values with ``match[]``, UTF-8 label names escaped as ``U__...``;
- query builder: ``/api/v1/metadata``;
- panels: ``query_range`` and ``query`` POSTed as forms (``step`` as Go's 'f' format, a
  ``timeout``), exemplars with ``start``/``end`` in seconds with millisecond fractions.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp.test_utils import TestClient, TestServer

from omtsdb.compose import build_app
from omtsdb.promql.engine import Engine
from omtsdb.remote.build import snappy, write_request_v1
from omtsdb.tsdb.db import DB

T = 1_700_000_000  # "now" of the dashboard, seconds
FORM = {"Content-Type": "application/x-www-form-urlencoded"}


def run(fn: Callable[[TestClient[Any, Any]], Awaitable[None]]) -> None:
    async def main() -> None:
        client: TestClient[Any, Any] = TestClient(
            TestServer(build_app(DB.open(None), Engine()), host="127.0.0.1")
        )
        await client.start_server()
        try:
            series = []
            for job, per_s in (("api", 2.0), ("web", 0.5)):
                for code in ("200", "500"):
                    lb = {"__name__": "http_requests_total", "job": job, "code": code}
                    pts = [((T - 900 + 15 * i) * 1000, per_s * 15 * i) for i in range(61)]
                    series.append((lb, pts))
            series.append(
                ({"__name__": "up", "job": "api", "instance": "a:9090"}, [(T * 1000 - 5000, 1.0)])
            )
            series.append(
                ({"__name__": "my.utf8", "my.label": "x", "job": "api"}, [(T * 1000 - 5000, 3.0)])
            )
            md = [("http_requests_total", 1, "Requests served.", ""), ("up", 2, "Up.", "")]
            r = await client.post(
                "/api/v1/write",
                data=snappy(write_request_v1(series, md)),
                headers={"Content-Type": "application/x-protobuf", "Content-Encoding": "snappy"},
            )
            assert r.status == 204
            await fn(client)
        finally:
            await client.close()

    asyncio.run(main())


async def ok(r: Any) -> Any:
    assert r.status == 200, (r.status, await r.text())
    assert r.headers["Content-Type"].startswith("application/json")
    js = await r.json()
    assert js["status"] == "success", js
    return js["data"]


async def resource(c: TestClient[Any, Any], path: str, form: dict[str, str]) -> Any:
    """Grafana's resource call: POST the form; on 405 or 400 retry as GET with the same
    parameters in the URL."""
    r = await c.post(path, data=form, headers=FORM)
    if r.status in (405, 400):
        r = await c.get(path, params=form)
    return await ok(r)


def test_save_and_test() -> None:
    async def body(c: TestClient[Any, Any]) -> None:
        data = await ok(await c.post("/api/v1/query", data={"query": "1+1", "time": "4"}))
        assert data == {"resultType": "scalar", "result": [4, "2"]}
        data = await ok(await c.get("/api/v1/query", params={"query": "1+1", "time": "4"}))
        assert data == {"resultType": "scalar", "result": [4, "2"]}
        r = await c.post("/api/v1/status/buildinfo", headers=FORM)
        assert r.status == 405  # so Grafana's client falls back to GET
        info = await resource(c, "/api/v1/status/buildinfo", {})
        assert {"version", "revision", "branch", "buildUser", "buildDate", "goVersion"} <= set(info)
        assert "features" not in info  # Grafana: "Prometheus", not Mimir
        assert all(isinstance(v, str) for v in info.values())

    run(body)


def test_metric_browser_and_query_builder() -> None:
    start, end = str(T - 3600), str(T)

    async def body(c: TestClient[Any, Any]) -> None:
        names = await ok(
            await c.get("/api/v1/label/__name__/values", params={"start": start, "end": end})
        )
        assert names == ["http_requests_total", "my.utf8", "up"]
        labels = await resource(c, "/api/v1/labels", {"start": start, "end": end})
        assert labels == ["__name__", "code", "instance", "job", "my.label"]
        labels = await resource(
            c, "/api/v1/labels", {"start": start, "end": end, "match[]": "http_requests_total"}
        )
        assert labels == ["__name__", "code", "job"]
        series = await resource(
            c,
            "/api/v1/series",
            {
                "match[]": '{__name__="http_requests_total",job="api"}',
                "start": start,
                "end": end,
                "limit": "40000",
            },
        )
        assert series == [
            {"__name__": "http_requests_total", "code": "200", "job": "api"},
            {"__name__": "http_requests_total", "code": "500", "job": "api"},
        ]
        values = await ok(
            await c.get(
                "/api/v1/label/job/values",
                params={
                    "match[]": "http_requests_total",
                    "start": start,
                    "end": end,
                    "limit": "40000",
                },
            )
        )
        assert values == ["api", "web"]
        r = await c.post("/api/v1/label/job/values", data={"start": start}, headers=FORM)
        assert r.status == 405
        values = await ok(await c.get("/api/v1/label/U__my_2e_label/values"))
        assert values == ["x"]
        meta = await ok(await c.get("/api/v1/metadata"))
        assert meta["http_requests_total"] == [
            {"type": "counter", "help": "Requests served.", "unit": ""}
        ]
        assert meta["up"] == [{"type": "gauge", "help": "Up.", "unit": ""}]

    run(body)


def test_panels_and_exemplars() -> None:
    async def body(c: TestClient[Any, Any]) -> None:
        data = await ok(
            await c.post(
                "/api/v1/query_range",
                data={
                    "query": 'sum by (job) (rate(http_requests_total{code="200"}[1m]))',
                    "start": str(T - 600),
                    "end": str(T),
                    "step": "30",
                    "timeout": "60s",
                },
                headers=FORM,
            )
        )
        assert data["resultType"] == "matrix"
        assert [s["metric"] for s in data["result"]] == [{"job": "api"}, {"job": "web"}]
        for s, rate in zip(data["result"], (2.0, 0.5), strict=True):
            assert len(s["values"]) == 21
            assert all(isinstance(t, int) and isinstance(v, str) for t, v in s["values"])
            assert all(abs(float(v) - rate) < 1e-12 for _, v in s["values"]), s["values"][:3]
        data = await ok(
            await c.post(
                "/api/v1/query_range",
                data={"query": "up", "start": f"{T - 60}.5", "end": f"{T}.5", "step": "0.5"},
                headers=FORM,
            )
        )
        ts = [t for t, _ in data["result"][0]["values"]]
        assert ts == [T - 5 + 0.5 * i for i in range(12)]  # the sample is 5 s old
        assert isinstance(ts[1], float) and isinstance(ts[0], int)
        data = await ok(
            await c.post(
                "/api/v1/query",
                data={"query": "sum by (job) (http_requests_total)", "time": f"{T}.25"},
                headers=FORM,
            )
        )
        assert data == {
            "resultType": "vector",
            "result": [
                {"metric": {"job": "api"}, "value": [T + 0.25, "3600"]},
                {"metric": {"job": "web"}, "value": [T + 0.25, "900"]},
            ],
        }
        ex = await ok(
            await c.post(
                "/api/v1/query_exemplars",
                data={
                    "query": 'histogram_quantile(0.9, rate(http_requests_total{job="api"}[5m]))',
                    "start": f"{T - 3600}.123",
                    "end": f"{T}.456",
                },
                headers=FORM,
            )
        )
        assert ex == []

    run(body)
