"""The HTTP API through a real aiohttp server on loopback: shapes, formatting, errors."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import numpy as np
from aiohttp.test_utils import TestClient

from omtsdb.compose import build_app
from omtsdb.model import Labels
from omtsdb.promql.engine import Engine
from omtsdb.tsdb.db import DB
from tests.helpers import run_client


def make_db() -> DB:
    db = DB.open(None)
    app = db.appender()
    ts = np.arange(0, 600_000, 15_000, dtype=np.int64)
    for i in range(2):
        app.append(
            Labels({"__name__": "up", "job": "node", "instance": f"h{i}"}), ts, np.ones(ts.size)
        )
        app.append(
            Labels({"__name__": "req_total", "job": "node", "instance": f"h{i}"}),
            ts,
            np.arange(ts.size) * (i + 1.0),
        )
    app.commit()
    return db


def run(fn: Callable[[TestClient[Any, Any]], Awaitable[None]]) -> None:
    run_client(lambda: build_app(make_db(), Engine()), fn)


async def get(c: TestClient[Any, Any], path: str, **params: str) -> tuple[int, Any]:
    r = await c.get(path, params=params)
    return r.status, await r.json()


def test_instant_vector_scalar_string() -> None:
    async def body(c: TestClient[Any, Any]) -> None:
        st, js = await get(c, "/api/v1/query", query="up", time="300")
        assert st == 200 and js["status"] == "success"
        assert js["data"]["resultType"] == "vector"
        assert js["data"]["result"][0] == {
            "metric": {"__name__": "up", "instance": "h0", "job": "node"},
            "value": [300, "1"],
        }
        st, js = await get(c, "/api/v1/query", query="0.1+0.2", time="1.5")
        assert js["data"] == {"resultType": "scalar", "result": [1.5, "0.30000000000000004"]}
        for q, want in (
            ("1e21", "1000000000000000000000"),
            ("1e-7", "0.0000001"),
            ("-0", "-0"),
            ("1/0", "+Inf"),
            ("-1/0", "-Inf"),
            ("0/0", "NaN"),
        ):
            _, js = await get(c, "/api/v1/query", query=q, time="1")
            assert js["data"]["result"][1] == want, q
        _, js = await get(c, "/api/v1/query", query='"a"', time="2017-01-01T00:00:00.5Z")
        assert js["data"] == {"resultType": "string", "result": [1483228800.5, "a"]}

    run(body)


def test_range_query_and_post_form() -> None:
    async def body(c: TestClient[Any, Any]) -> None:
        r = await c.post(
            "/api/v1/query_range",
            data={"query": "sum(rate(req_total[1m]))", "start": "120", "end": "240", "step": "1m"},
        )
        js = await r.json()
        assert r.status == 200
        assert js["data"]["resultType"] == "matrix"
        (series,) = js["data"]["result"]
        assert series["metric"] == {}
        assert [p[0] for p in series["values"]] == [120, 180, 240]
        assert abs(float(series["values"][0][1]) - 0.2) < 1e-12

    run(body)


def test_errors_envelope_and_status() -> None:
    async def body(c: TestClient[Any, Any]) -> None:
        st, js = await get(c, "/api/v1/query", query="rate(up)")
        assert st == 400 and js["errorType"] == "bad_data"
        assert js["error"].startswith('invalid parameter "query": 1:6: parse error: expected type')
        st, js = await get(c, "/api/v1/query", query="up", time="x")
        assert st == 400
        assert js["error"] == (
            'invalid parameter "time": invalid time value for \'time\': cannot parse "x" to a '
            "valid timestamp"
        )
        st, js = await get(c, "/api/v1/query_range", query="up", start="10", end="5", step="1")
        assert st == 400 and "end timestamp must not be before start time" in js["error"]
        st, js = await get(c, "/api/v1/query_range", query="up", start="0", end="100000", step="1")
        assert st == 400 and "11,000 points" in js["error"]
        st, js = await get(c, "/api/v1/query_range", query="up", start="0", end="10", step="0")
        assert st == 400 and "zero or negative" in js["error"]
        st, js = await get(c, "/api/v1/query", query="up / on(job) up", time="300")
        assert st == 422 and js["errorType"] == "execution"
        r = await c.get("/api/v1/nope")
        assert r.status == 404 and await r.text() == "404 page not found\n"
        st, js = await get(c, "/api/v1/query", query="up", time="1e20")
        assert st == 200 and js["data"]["result"] == []

    run(body)


def test_labels_series_values_format() -> None:
    async def body(c: TestClient[Any, Any]) -> None:
        _, js = await get(c, "/api/v1/labels")
        assert js["data"] == ["__name__", "instance", "job"]
        _, js = await get(c, "/api/v1/label/instance/values")
        assert js["data"] == ["h0", "h1"]
        _, js = await get(c, "/api/v1/label/__name__/values", **{"match[]": "up"})
        assert js["data"] == ["up"]
        r = await c.get(
            "/api/v1/series", params=[("match[]", "up"), ("match[]", 'req_total{instance="h1"}')]
        )
        js = await r.json()
        assert len(js["data"]) == 3
        st, js = await get(c, "/api/v1/series")
        assert st == 400
        _, js = await get(c, "/api/v1/labels", limit="1")
        assert js["data"] == ["__name__"] and js["warnings"]
        _, js = await get(c, "/api/v1/format_query", query="sum(rate(x[5m]))by(a)")
        assert js["data"] == "sum by (a) (rate(x[5m]))"
        _, js = await get(c, "/api/v1/status/buildinfo")
        assert "features" not in js["data"] and js["data"]["version"].count(".") == 2
        r = await c.get("/-/healthy")
        assert r.status == 200

    run(body)


def test_label_values_name_not_utf8_is_refused() -> None:
    async def body(c: TestClient[Any, Any]) -> None:
        r = await c.get("/api/v1/label/%ff/values")
        js = await r.json()
        # as Prometheus 3.5 answers (checked against the real one)
        assert r.status == 400 and js["error"] == 'invalid label name: "\\xff"'
        r = await c.get("/api/v1/label/%C3%BC/values")
        assert r.status == 200

    run(body)


def test_strings_that_are_not_utf8_never_break_the_json() -> None:
    # "\xff" is a byte, as in Go; Go's JSON writer prints it as U+FFFD (checked against
    # Prometheus 3.5 for the string query)
    async def body(c: TestClient[Any, Any]) -> None:
        st, js = await get(c, "/api/v1/query", query='"\\xff"', time="0")
        assert st == 200 and js["data"]["result"][1] == "\ufffd"
        st, js = await get(c, "/api/v1/query", query='"\\xc3\\xbc"', time="0")
        assert js["data"]["result"][1] == "ü"
        q = 'label_replace(vector(1), "dst", "\\xff", "", "")'
        st, js = await get(c, "/api/v1/query", query=q, time="0")
        assert st == 200 and js["data"]["result"][0]["metric"] == {"dst": "\ufffd"}
        q = 'label_replace(vector(1), "\\xff", "x", "", "")'
        st, js = await get(c, "/api/v1/query", query=q, time="0")
        assert st == 422 and js["errorType"] == "execution"
        st, js = await get(c, "/api/v1/query", query='{__name__=~"\\xff"}', time="0")
        assert st == 200 and js["data"]["result"] == []

    run(body)
