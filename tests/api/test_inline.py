"""Cheap repeated queries run on the event loop; answers are the same either way."""

from __future__ import annotations

import threading
from typing import Any

from aiohttp.test_utils import TestClient

from omtsdb.api.app import STATE
from omtsdb.api.inline import QueryCosts
from tests.api.test_api import get, run


def test_query_costs_remember_the_last_run() -> None:
    c = QueryCosts(limit_s=0.002, size=2)
    assert not c.cheap("q")  # never seen: the pool
    c.record("q", 0.0005)
    assert c.cheap("q")
    c.record("q", 0.5)  # got slow: back to the pool
    assert not c.cheap("q")
    c.record("a", 0.0001)
    c.record("b", 0.0001)  # bounded: "q" is forgotten
    assert not c.cheap("q") and c.cheap("a") and c.cheap("b")


def test_repeated_query_runs_inline_with_the_same_answer() -> None:
    threads: list[str] = []

    async def body(c: TestClient[Any, Any]) -> None:
        st = c.server.app[STATE]
        st.costs.limit_s = 60.0  # "cheap" whatever this machine's speed
        engine = st.engine
        real = engine.instant_query

        def spy(*a: Any, **kw: Any) -> Any:
            threads.append(threading.current_thread().name)
            return real(*a, **kw)

        engine.instant_query = spy  # type: ignore[method-assign]
        answers = [await get(c, "/api/v1/query", query="sum(up)", time="300") for _ in range(3)]
        assert answers[0] == answers[1] == answers[2]
        assert answers[0][0] == 200

    run(body)
    assert threads[0].startswith("query")  # first run: the pool
    assert threads[1] == threads[2] == "MainThread"  # then on the loop
