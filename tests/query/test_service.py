"""The query service through the HTTP API: query length limit, parsing off the event loop and
inside the timeout, the timeout covering the queue (issue 11, items 6, 8, 9), the inline cost
bound, the range point limit. Loop blocking is measured by the server's own loop-lag metric
(``omtsdb_event_loop_blocked_seconds`` on ``/metrics``), never by timing the requests. The
client runs on threads of its own (urllib), so that only the server uses the event loop."""

from __future__ import annotations

import asyncio
import json
import re
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Awaitable, Callable
from typing import Any

import numpy as np
import pytest
from aiohttp.test_utils import TestClient, TestServer

from omtsdb.api.app import create_app
from omtsdb.api.services import SERVICES
from omtsdb.compose import ServiceOptions, build_services
from omtsdb.model.labels import Labels
from omtsdb.obs.looplag import LoopLagMonitor
from omtsdb.promql.engine import Engine
from omtsdb.query.costs import Cost, CostTable
from omtsdb.query.service import QueryLimits
from omtsdb.tsdb.db import DB

Client = TestClient[Any, Any]
T = 1_700_000_000  # s


def _db(n: int = 10) -> DB:
    db = DB.open(None)
    add_series(db, n)
    return db


def add_series(db: DB, n: int, start: int = 0) -> None:
    app = db.appender()
    series = [Labels({"__name__": "m", "i": str(start + i)}) for i in range(n)]
    ts = np.full(n, T * 1000 - 10_000, np.int64)
    app.append_columns(series, np.arange(n), ts, np.ones(n))
    app.commit()


def serve(db: DB, fn: Callable[[Client], Awaitable[None]], **limits: Any) -> None:
    services = build_services(db, Engine(), ServiceOptions(limits=QueryLimits(**limits)))
    services.api.loop_lag = LoopLagMonitor(0.005)  # fine sampling: a 50 ms hold-up shows

    async def main() -> None:
        client: Client = TestClient(TestServer(create_app(services.api), host="127.0.0.1"))
        await client.start_server()
        try:
            await fn(client)
        finally:
            await client.close()
            services.close()

    asyncio.run(main())


async def blocked(c: Client) -> tuple[int, int]:
    """(samples of the loop-blocked histogram, of them over 50 ms) so far."""
    text = (await asyncio.to_thread(_http, c, "/metrics", {}, False))[1].decode()
    count = re.search(r"^omtsdb_event_loop_blocked_seconds_count (\S+)$", text, re.M)
    under = re.search(r'^omtsdb_event_loop_blocked_seconds_bucket\{le="0.05"\} (\S+)$', text, re.M)
    assert count and under
    n = int(float(count.group(1)))
    return n, n - int(float(under.group(1)))


def _http(c: Client, path: str, params: dict[str, str], post: bool) -> tuple[int, bytes]:
    url = str(c.make_url(path))
    data = urllib.parse.urlencode(params).encode()
    req = (
        urllib.request.Request(url, data)
        if post
        else urllib.request.Request(f"{url}?{data.decode()}")
    )
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


async def get(c: Client, path: str, **params: str) -> tuple[int, Any]:
    st, body = await asyncio.to_thread(_http, c, path, params, False)
    return st, json.loads(body)


async def post(c: Client, path: str, **form: str) -> tuple[int, Any]:
    st, body = await asyncio.to_thread(_http, c, path, form, True)
    return st, json.loads(body)


async def ready(c: Client) -> int:
    return (await asyncio.to_thread(_http, c, "/-/ready", {}, False))[0]


def test_range_point_limit_is_prometheus_s() -> None:
    """``(end - start) / step > 11000`` is refused, 11,001 points are not (Prometheus 3.5:
    200 for end=11000, 400 for end=11001)."""

    async def body(c: Client) -> None:
        st, js = await get(c, "/api/v1/query_range", query="1", start="0", end="11000", step="1")
        assert st == 200 and len(js["data"]["result"][0]["values"]) == 11001
        st, js = await get(c, "/api/v1/query_range", query="1", start="0", end="11001", step="1")
        assert st == 400 and js["error"] == (
            "exceeded maximum resolution of 11,000 points per timeseries. "
            "Try decreasing the query resolution (?step=XX)"
        )

    serve(_db(), body)


def test_huge_query_texts_are_refused_without_holding_the_loop() -> None:
    """A 5 MB string literal and 100,000 matchers answer 400 at once (the length limit);
    the form body of the first is split off the loop; /-/ready keeps answering."""

    literal = 'label_replace(m, "a", "' + "x" * 5_000_000 + '", "b", "c")'
    matchers = "m{" + ",".join(f'l{i}="v"' for i in range(100_000)) + "}"

    async def body(c: Client) -> None:
        before = await blocked(c)
        for q in (literal, matchers):
            send = asyncio.create_task(post(c, "/api/v1/query", query=q, time=str(T)))
            for _ in range(5):
                assert await ready(c) == 200
            st, js = await send
            assert st == 400 and js["errorType"] == "bad_data"
            assert "--query.max-length" in js["error"]
        await asyncio.sleep(0.05)
        after = await blocked(c)
        assert after[0] > before[0] and after[1] == before[1]  # no sample over 50 ms

    serve(_db(), body)


def test_parsing_runs_in_the_pool_and_inside_the_timeout() -> None:
    """A query under the length limit that is slow to parse (10,000 matchers: ~0.5 s) is
    parsed on a pool thread; with timeout=0.1s it answers 503 timeout."""

    q = "m{" + ",".join(f'l{i}!="v"' for i in range(10_000)) + "}"

    async def body(c: Client) -> None:
        before = await blocked(c)
        send = asyncio.create_task(post(c, "/api/v1/query", query=q, time=str(T), timeout="0.1"))
        while not send.done():
            assert await ready(c) == 200
            await asyncio.sleep(0.01)
        st, js = await send
        assert st == 503 and js["errorType"] == "timeout"
        assert js["error"] == "query timed out in expression evaluation"
        await asyncio.sleep(0.05)
        assert (await blocked(c))[1] == before[1]

    serve(_db(), body)


def test_the_timeout_covers_the_queue_and_the_request_parameter() -> None:
    """With one pool thread busy, a queued query answers 503 "query timed out in query
    queue" at its timeout; a slow evaluation answers 503 at the ``timeout=`` it asked for."""
    db = _db()

    async def body(c: Client) -> None:
        engine = c.server.app[SERVICES].query.engine
        real = engine.instant_query
        gate = threading.Event()

        def slow(*a: Any, **kw: Any) -> Any:
            if a[1] == "sum(m)":
                gate.wait(5)  # a query that holds the only slot
            return real(*a, **kw)

        engine.instant_query = slow  # type: ignore[method-assign]
        hold = asyncio.create_task(get(c, "/api/v1/query", query="sum(m)", time=str(T)))
        await asyncio.sleep(0.1)
        st, js = await get(c, "/api/v1/query", query="count(m)", time=str(T), timeout="0.2")
        assert (st, js["errorType"], js["error"]) == (
            503,
            "timeout",
            "query timed out in query queue",
        )
        gate.set()
        st, _ = await hold
        assert st == 200
        # the request parameter shortens --query.timeout; the engine stops at the deadline
        heavy = "count_over_time(vector(1)[3d:100ms])"
        st, js = await get(c, "/api/v1/query", query=heavy, time=str(T), timeout="20ms")
        assert (st, js["errorType"]) == (503, "timeout")
        st, js = await get(c, "/api/v1/query", query="1", time=str(T), timeout="abc")
        assert st == 400 and js["error"] == (
            'invalid parameter "timeout": cannot parse "abc" to a valid duration'
        )

    serve(db, body, max_concurrency=1)


@pytest.mark.slow
def test_cheap_repeated_queries_run_inline_and_growth_sends_them_back_to_the_pool() -> None:
    """A query that selected few series runs on the loop the next time; when its selector
    then matches 30,000 series, the inline run stops at its bound (what it selects, its time
    slice) and the pool answers: the loop is never blocked for more than 50 ms."""
    db = _db(10)
    threads: list[str] = []

    async def body(c: Client) -> None:
        svc = c.server.app[SERVICES].query
        real = svc.engine.instant_query

        def spy(*a: Any, **kw: Any) -> Any:
            threads.append(threading.current_thread().name)
            return real(*a, **kw)

        svc.engine.instant_query = spy  # type: ignore[method-assign]
        answers = [await get(c, "/api/v1/query", query="count(m)", time=str(T)) for _ in range(3)]
        assert answers[0] == answers[1] == answers[2]
        assert answers[0][1]["data"]["result"][0]["value"][1] == "10"
        assert threads[0].startswith("query") and threads[1:] == ["MainThread"] * 2
        await asyncio.to_thread(add_series, db, 30_000, 10)
        await asyncio.sleep(0.05)
        before = await blocked(c)
        threads.clear()
        for _ in range(2):
            st, js = await get(c, "/api/v1/query", query="count(m)", time=str(T))
            assert st == 200 and js["data"]["result"][0]["value"][1] == "30010"
        # the first tried inline and was stopped, then both ran in the pool
        assert threads[0] == "MainThread" and all(t.startswith("query") for t in threads[1:])
        await asyncio.sleep(0.05)
        assert (await blocked(c))[1] == before[1]

    serve(db, body)


def test_cost_table_is_bounded_and_judges_by_what_was_selected() -> None:
    c = CostTable(Cost(series=10, samples=100), size=2)
    assert not c.cheap("q")  # never seen: the pool
    c.record("q", Cost(3, 50))
    assert c.cheap("q")
    c.record("q", Cost(11, 50))  # selects more series now: back to the pool
    assert not c.cheap("q")
    c.record("q", Cost(1, 101))
    assert not c.cheap("q")
    c.record("a", Cost(1, 1))
    c.record("b", Cost(1, 1))  # bounded: "q" is forgotten
    assert c.cheap("a") and c.cheap("b")
    c.forget("a")
    assert not c.cheap("a")


def test_instant_and_range_callables_for_rules_and_ai() -> None:
    """``instant_fn``/``range_fn`` (what the rules engine and the AI layer are handed) run
    on the pool with the same limits and answers as the HTTP API."""
    db = _db(3)
    services = build_services(db, Engine(), ServiceOptions(limits=QueryLimits(timeout_s=5)))
    try:
        res = services.query.instant_fn("count(m)", T * 1000)
        assert res.value[0].v == 3  # type: ignore[index, union-attr]
        mat = services.query.range_fn("count(m)", T * 1000 - 10_000, T * 1000, 5_000)
        assert [s.vs.tolist() for s in mat.value] == [[3.0, 3.0, 3.0]]  # type: ignore[union-attr]
        t0 = time.monotonic()
        try:
            services.query.instant_sync("count_over_time(vector(1)[3d:100ms])", 0, timeout_s=0.02)
        except Exception as e:
            assert type(e).__name__ == "QueryTimeoutError"
        else:
            raise AssertionError("expected a timeout")
        assert time.monotonic() - t0 < 5
    finally:
        services.close()
