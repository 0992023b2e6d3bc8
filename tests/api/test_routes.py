"""The route table: every route the server serves comes from ``api.routes.ROUTES`` and names
the permission a caller needs; the authentication middleware finds it with ``route_for``."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient

from omtsdb.api.routes import ROUTE_TABLE, ROUTES, Permission, route_for
from omtsdb.compose import build_app
from omtsdb.tsdb.db import DB
from tests.helpers import run_client


def test_every_route_names_a_permission() -> None:
    missing = [r.name for r in ROUTES if not isinstance(r.permission, Permission)]
    assert not missing, f"routes without a permission: {missing}"
    assert len({(r.path, m) for r in ROUTES for m in r.methods}) == sum(
        len(r.methods) for r in ROUTES
    ), "a path and method listed twice"
    public = {r.path for r in ROUTES if r.permission is Permission.PUBLIC}
    assert public == {"/-/healthy", "/-/ready"}
    writes = {r.path for r in ROUTES if r.permission is Permission.WRITE}
    assert writes == {"/api/v1/write", "/api/v1/import/prometheus", "/api/v1/otlp/v1/metrics"}
    assert {r.path for r in ROUTES if r.permission is Permission.ADMIN} == {"/-/reload", "/-/quit"}


def test_the_app_serves_exactly_the_table() -> None:
    app = build_app(DB.open(None))
    table = app[ROUTE_TABLE]
    served = list(app.router.routes())
    assert served and all(r in table for r in served), "a route registered outside the table"
    assert {t.path for t in table.values()} == {r.path for r in ROUTES}


def test_route_for_tells_the_middleware_the_permission() -> None:
    seen: list[tuple[str, str | None]] = []

    @web.middleware
    async def record(req: web.Request, handler: Any) -> web.StreamResponse:
        r = route_for(req)
        seen.append((req.path, r.permission.value if r is not None else None))
        return await handler(req)

    def make() -> web.Application:
        app = build_app(DB.open(None))
        app.middlewares.insert(0, record)
        return app

    async def body(c: TestClient[Any, Any]) -> None:
        await c.get("/-/ready")
        await c.get("/api/v1/query", params={"query": "1"})
        await c.post("/api/v1/write", data=b"")
        await c.post("/-/reload")
        await c.get("/api/v1/nothing")
        await c.get("/nothing")

    run_client(make, body)
    assert seen == [
        ("/-/ready", "public"),
        ("/api/v1/query", "read"),
        ("/api/v1/write", "write"),
        ("/-/reload", "admin"),
        ("/api/v1/nothing", "read"),  # the /api/v1 catch-all (404)
        ("/nothing", None),  # no route: aiohttp's 404
    ]
