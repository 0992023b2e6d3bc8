"""/metrics: the registry's exposition, HTTP instrumentation by route pattern, storage metrics,
and ``promtool check metrics`` finding nothing to complain about."""

from __future__ import annotations

import asyncio
import math
import subprocess
import threading
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from aiohttp.test_utils import TestClient, TestServer

from omtsdb.compose import build_app
from omtsdb.model.exposition import parse
from omtsdb.model.labels import Labels
from omtsdb.obs.registry import Counter, Gauge, Histogram, Registry, Summary, quantile, render_text
from omtsdb.promql.engine import Engine
from omtsdb.remote.build import snappy, write_request_v1
from omtsdb.tsdb.db import DB
from tests.conftest import peer_bin


def test_registry_exposition() -> None:
    reg = Registry()
    c = Counter(
        "x_requests_total", "Requests.\nSecond line \\ here.", ("code", "path"), registry=reg
    )
    c.labels("200", "/a").inc()
    c.labels("200", "/a").inc(2)
    c.labels("500", 'q"uo\nte').inc()
    g = Gauge("x_in_flight", "In flight.", registry=reg)
    g.set(-0.0)
    h = Histogram("x_duration_seconds", "Durations.", buckets=(0.1, 1, 1e-5), registry=reg)
    for v in (0.05, 0.1, 0.5, 7.0):
        h.observe(v)
    Counter("x_unused_total", "Never touched.", ("a",), registry=reg)  # no child: left out
    assert render_text(reg.collect()).decode() == (
        "# HELP x_duration_seconds Durations.\n"
        "# TYPE x_duration_seconds histogram\n"
        'x_duration_seconds_bucket{le="1e-05"} 0\n'
        'x_duration_seconds_bucket{le="0.1"} 2\n'
        'x_duration_seconds_bucket{le="1"} 3\n'
        'x_duration_seconds_bucket{le="+Inf"} 4\n'
        "x_duration_seconds_sum 7.65\n"
        "x_duration_seconds_count 4\n"
        "# HELP x_in_flight In flight.\n"
        "# TYPE x_in_flight gauge\n"
        "x_in_flight 0\n"
        "# HELP x_requests_total Requests.\\nSecond line \\\\ here.\n"
        "# TYPE x_requests_total counter\n"
        'x_requests_total{code="200",path="/a"} 3\n'
        'x_requests_total{code="500",path="q\\"uo\\nte"} 1\n'
    )
    with pytest.raises(ValueError):
        c.inc()  # has labels
    with pytest.raises(ValueError):
        c.labels("200")  # wrong arity
    with pytest.raises(ValueError):
        Counter("x_requests_total", "again", registry=reg)
    with pytest.raises(ValueError):
        Gauge("bad-name", "x", registry=reg)
    with pytest.raises(ValueError):
        Histogram("x_h", "x", ("le",), registry=reg)


def test_summary_and_threads() -> None:
    reg = Registry()
    s = Summary("x_latency_seconds", "Latency.", ("op",), registry=reg)
    for v in range(1, 101):
        s.labels("read").observe(v / 100)
    c = Counter("x_total", "Total.", registry=reg)

    def work() -> None:
        for _ in range(10_000):
            c.inc()

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    text = render_text(reg.collect()).decode()
    assert "x_total 80000\n" in text
    assert 'x_latency_seconds{op="read",quantile="0.5"} 0.5\n' in text
    assert 'x_latency_seconds{op="read",quantile="0.9"} 0.9\n' in text
    assert 'x_latency_seconds{op="read",quantile="0.99"} 0.99\n' in text
    assert 'x_latency_seconds_count{op="read"} 100\n' in text
    assert math.isnan(quantile([], 0.5))
    old = Summary("x_old_seconds", "Old.", max_age_s=0.05, registry=reg)
    old.observe(3.0)
    time.sleep(0.1)
    text = render_text(reg.collect()).decode()
    assert 'x_old_seconds{quantile="0.5"} NaN\n' in text  # aged out of the window
    assert "x_old_seconds_count 1\n" in text  # but still counted


def run(
    fn: Callable[[TestClient[Any, Any], DB], Awaitable[None]], path: Path | None = None
) -> None:
    async def main() -> None:
        db = DB.open(path)
        client: TestClient[Any, Any] = TestClient(
            TestServer(build_app(db, Engine()), host="127.0.0.1")
        )
        await client.start_server()
        try:
            await fn(client, db)
        finally:
            await client.close()
            db.close()

    asyncio.run(main())


async def scrape(c: TestClient[Any, Any]) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    r = await c.get("/metrics")
    assert r.status == 200
    assert r.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    exp = parse(await r.read(), "text")
    out = {}
    for k, v in zip(exp.series_idx.tolist(), exp.vs.tolist(), strict=True):
        lb = exp.series[k]
        out[(lb.name, tuple((n, x) for n, x in lb if n != "__name__"))] = v
    return out


def test_http_and_storage_metrics(tmp_path: Path) -> None:
    async def body(c: TestClient[Any, Any], db: DB) -> None:
        before = await scrape(c)
        key = (
            "prometheus_http_requests_total",
            (("code", "200"), ("handler", "/api/v1/label/:name/values")),
        )
        for name in ("job", "instance", "__name__"):
            assert (await c.get(f"/api/v1/label/{name}/values")).status == 200
        assert (await c.get("/api/v1/query", params={"query": "up{"})).status == 400
        assert (await c.get("/no/such/path")).status == 404
        series = [
            ({"__name__": "m", "i": str(i)}, [(1000, float(i)), (2000, 1.0)]) for i in range(5)
        ]
        r = await c.post(
            "/api/v1/write",
            data=snappy(write_request_v1(series)),
            headers={"Content-Type": "application/x-protobuf", "Content-Encoding": "snappy"},
        )
        assert r.status == 204
        after = await scrape(c)
        assert after[key] - before.get(key, 0) == 3  # by route pattern, not by URL
        q400 = ("prometheus_http_requests_total", (("code", "400"), ("handler", "/api/v1/query")))
        assert after[q400] - before.get(q400, 0) == 1
        assert not any("/no/such/path" in str(k) for k in after)
        dur = (
            "prometheus_http_request_duration_seconds_count",
            (("handler", "/api/v1/label/:name/values"),),
        )
        assert after[dur] - before.get(dur, 0) == 3
        assert after[("prometheus_tsdb_head_series", ())] == 5
        assert after[("prometheus_tsdb_head_samples_appended_total", (("type", "float"),))] == 10
        w = ("omtsdb_remote_write_requests_total", (("code", "204"),))
        assert after[w] - before.get(w, 0) == 1
        fs = ("prometheus_tsdb_wal_fsync_duration_seconds_count", ())
        assert after[fs] - before.get(fs, 0) >= 1  # the write above was fsynced
        assert after[("process_resident_memory_bytes", ())] > 1e6
        assert abs(after[("process_start_time_seconds", ())] - time.time()) < 3600
        assert (
            after[("prometheus_engine_query_duration_seconds_count", (("slice", "inner_eval"),))]
            >= 0
        )

    run(body, tmp_path / "db")


def test_samples_appended_excludes_replay(tmp_path: Path) -> None:
    db = DB.open(tmp_path)
    app = db.appender()
    app.append(Labels({"__name__": "a"}), np.array([1, 2, 3], np.int64), np.ones(3))
    app.commit()
    db.close()

    async def body(c: TestClient[Any, Any], db: DB) -> None:
        got = await scrape(c)
        assert got[("prometheus_tsdb_head_samples_appended_total", (("type", "float"),))] == 0
        assert got[("prometheus_tsdb_head_series", ())] == 1
        assert got[("prometheus_tsdb_head_series_created_total", ())] == 1

    run(body, tmp_path)


def test_promtool_check_metrics(tmp_path: Path) -> None:
    promtool = peer_bin("promtool")

    async def body(c: TestClient[Any, Any], db: DB) -> None:
        series = [({"__name__": "m", "i": "1"}, [(1000, 1.0)])]
        await c.post(
            "/api/v1/write",
            data=snappy(write_request_v1(series)),
            headers={"Content-Type": "application/x-protobuf", "Content-Encoding": "snappy"},
        )
        await c.get("/api/v1/query", params={"query": "m", "time": "1"})
        await c.get("/federate", params={"match[]": "m"})
        await c.get("/api/v1/label/i/values")
        r = await c.get("/metrics")
        text = await r.read()
        assert b"prometheus_http_requests_total" in text
        p = subprocess.run(
            [str(promtool), "check", "metrics"], input=text, capture_output=True, timeout=60
        )
        assert (p.returncode, p.stdout, p.stderr) == (0, b"", b"")

    run(body, tmp_path / "db")
