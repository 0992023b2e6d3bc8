"""Status endpoints (tsdb, walreplay, config), query_exemplars validation, 405 vs 404.
Shapes and values as Prometheus 3.5 answers (checked side by side in test_federate_peer.py)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import numpy as np
from aiohttp.test_utils import TestClient

from omtsdb.api.runtime import DEFAULT_CONFIG_YAML, RUNTIME
from omtsdb.api.services import APIOptions
from omtsdb.api.status import label_size
from omtsdb.compose import build_app
from omtsdb.model.labels import Labels
from omtsdb.promql.engine import Engine
from omtsdb.tsdb.db import DB
from tests.helpers import run_client

I64_MAX = 2**63 - 1
I64_MIN = -(2**63)


def fill(db: DB) -> None:
    app = db.appender()
    ts = np.arange(0, 60_000, 15_000, dtype=np.int64)
    for i in range(3):
        app.append(Labels({"__name__": "up", "job": "n", "instance": f"h{i}"}), ts, np.ones(4))
    app.append(Labels({"__name__": "büro", "job": "n"}), ts[:1] + 5, np.ones(1))
    app.commit()


def run(
    fn: Callable[[TestClient[Any, Any]], Awaitable[None]],
    db: DB | None = None,
    opts: APIOptions | None = None,
) -> None:
    run_client(lambda: build_app(db or DB.open(None), Engine(), opts), fn)


async def get(c: TestClient[Any, Any], path: str, **params: str) -> tuple[int, Any]:
    r = await c.get(path, params=params)
    return r.status, await r.json()


def test_tsdb_status() -> None:
    db = DB.open(None)
    fill(db)

    async def body(c: TestClient[Any, Any]) -> None:
        st, js = await get(c, "/api/v1/status/tsdb")
        assert st == 200 and js["status"] == "success"
        assert js["data"] == {
            "headStats": {
                "numSeries": 4,
                "numLabelPairs": 6,
                "chunkCount": 4,
                "minTime": 0,
                "maxTime": 45_000,
            },
            "seriesCountByMetricName": [
                {"name": "up", "value": 3},
                {"name": "büro", "value": 1},
            ],
            "labelValueCountByLabelName": [
                {"name": "instance", "value": 3},
                {"name": "__name__", "value": 2},
                {"name": "job", "value": 1},
            ],
            "memoryInBytesByLabelName": [
                {"name": "__name__", "value": 3 * 12 + 15},  # "büro" is 5 bytes
                {"name": "instance", "value": 36},
                {"name": "job", "value": 24},
            ],
            "seriesCountByLabelValuePair": [
                {"name": "job=n", "value": 4},
                {"name": "__name__=up", "value": 3},
                {"name": "__name__=büro", "value": 1},
                {"name": "instance=h0", "value": 1},
                {"name": "instance=h1", "value": 1},
                {"name": "instance=h2", "value": 1},
            ],
        }
        st, js = await get(c, "/api/v1/status/tsdb", limit="1")
        assert [len(v) for v in js["data"].values() if isinstance(v, list)] == [1, 1, 1, 1]
        for bad in ("0", "-1", "x", "1.5"):
            st, js = await get(c, "/api/v1/status/tsdb", limit=bad)
            assert (st, js) == (
                400,
                {
                    "status": "error",
                    "errorType": "bad_data",
                    "error": "limit must be a positive number",
                },
            )

    run(body, db)

    async def empty(c: TestClient[Any, Any]) -> None:
        _, js = await get(c, "/api/v1/status/tsdb")
        assert js["data"]["headStats"] == {
            "numSeries": 0,
            "numLabelPairs": 0,
            "chunkCount": 0,
            "minTime": I64_MAX,
            "maxTime": I64_MIN,
        }
        assert js["data"]["seriesCountByLabelValuePair"] == []

    run(empty)


def test_label_size() -> None:
    assert label_size("instance", "h") == 11
    assert label_size("a", "x" * 200) == 1 + 1 + 2 + 200


def test_walreplay(tmp_path: Path) -> None:
    async def body(c: TestClient[Any, Any]) -> None:
        st, js = await get(c, "/api/v1/status/walreplay")
        assert (st, js) == (200, {"status": "success", "data": want})

    db = DB.open(tmp_path)
    want = {"min": 0, "max": 0, "current": 0}  # fresh, as a fresh Prometheus
    run(body, db)
    fill(db)
    db.close()
    db = DB.open(tmp_path)  # segment 0 replayed, writing goes on in segment 1
    want = {"min": 0, "max": 1, "current": 1}
    run(body, db)
    db.close()


def test_config_status() -> None:
    async def body(c: TestClient[Any, Any]) -> None:
        st, js = await get(c, "/api/v1/status/config")
        assert (st, js) == (200, {"status": "success", "data": {"yaml": DEFAULT_CONFIG_YAML}})
        assert DEFAULT_CONFIG_YAML.startswith("global:\n  scrape_interval: 1m\n")
        c.server.app[RUNTIME].update(config_yaml="global:\n  scrape_interval: 15s\n")
        _, js = await get(c, "/api/v1/status/config")
        assert js["data"]["yaml"] == "global:\n  scrape_interval: 15s\n"

    run(body)


def test_query_exemplars() -> None:
    async def body(c: TestClient[Any, Any]) -> None:
        ok = {"status": "success", "data": []}
        assert await get(c, "/api/v1/query_exemplars", query="up") == (200, ok)
        r = await c.post(
            "/api/v1/query_exemplars",
            data={
                "query": 'rate(up{job="n"}[5m])',
                "start": "1700000000.123",
                "end": "1700003600.456",
            },
        )
        assert (r.status, await r.json()) == (200, ok)
        r = await c.get(
            "/api/v1/query_exemplars", params={"query": "1+1", "start": "1", "end": "2"}
        )
        assert (r.status, await r.read()) == (204, b"")
        for params, msg in (
            (
                {"query": "up{", "start": "1", "end": "2"},
                "1:4: parse error: unexpected end of input inside braces",
            ),
            (
                {"start": "1", "end": "2"},
                "unknown position: parse error: no expression found in input",
            ),
            (
                {"query": "up", "start": "10", "end": "2"},
                "end timestamp must not be before start timestamp",
            ),
            (
                {"query": "up", "start": "x", "end": "2"},
                'invalid parameter "start": invalid time value for \'start\': cannot parse "x" to a valid timestamp',
            ),
        ):
            st, js = await get(c, "/api/v1/query_exemplars", **params)
            assert (st, js) == (400, {"status": "error", "errorType": "bad_data", "error": msg})

    run(body)


def test_method_not_allowed_and_not_found() -> None:
    async def body(c: TestClient[Any, Any]) -> None:
        for path in (
            "/api/v1/status/buildinfo",
            "/api/v1/label/job/values",
            "/api/v1/metadata",
            "/api/v1/status/tsdb",
        ):
            r = await c.post(path)
            assert r.status == 405, path
            assert "GET" in r.headers["Allow"]
        r = await c.delete("/api/v1/query")
        assert r.status == 405 and "POST" in r.headers["Allow"]
        r = await c.get("/api/v1/no_such_thing")
        assert (r.status, await r.text()) == (404, "404 page not found\n")

    run(body)
