"""Every HTTP route of the server, in one table: path, methods, handler and the permission a
caller needs (enforced by the authentication middleware that ``APIServices.middlewares``
plugs in; ``route_for(request)`` tells it which entry a request matched).

Permissions: ``READ`` (queries, metadata, status, federation, remote read, ``/metrics``),
``WRITE`` (remote write, import, OTLP), ``ADMIN`` (lifecycle: reload, quit), ``PUBLIC`` (the
health and readiness probes only: an orchestrator must reach them without credentials).

To add an endpoint: write the handler in your package (state from an ``AppKey`` that
``api.app.create_app`` fills from ``APIServices``), then add one ``Route`` here. The table is
registered in order; the ``/api/v1`` catch-all (404/405 as Prometheus answers) comes last.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass

from aiohttp import web
from aiohttp.web_urldispatcher import AbstractRoute

from omtsdb.api import federate, lifecycle, query, series, status
from omtsdb.api.exemplars import query_exemplars
from omtsdb.api.http import Handler
from omtsdb.api.instrument import method_not_allowed_or_404, metrics_handler
from omtsdb.remote import routes as remote
from omtsdb.scrape import api as scrape


class Permission(enum.Enum):
    PUBLIC = "public"
    READ = "read"
    WRITE = "write"
    ADMIN = "admin"


GET = ("GET",)
POST = ("POST",)
GET_POST = ("GET", "POST")
ANY = ("*",)  # every method: the handler answers 405 itself where Prometheus does


@dataclass(frozen=True, slots=True)
class Route:
    path: str  # aiohttp pattern
    handler: Handler
    permission: Permission
    methods: tuple[str, ...] = GET  # GET implies HEAD

    @property
    def name(self) -> str:
        return f"{'|'.join(self.methods)} {self.path}"


R, W, A, P = Permission.READ, Permission.WRITE, Permission.ADMIN, Permission.PUBLIC

ROUTES: tuple[Route, ...] = (
    # queries (api.query)
    Route("/api/v1/query", query.query, R, GET_POST),
    Route("/api/v1/query_range", query.query_range, R, GET_POST),
    Route("/api/v1/format_query", query.format_query, R, GET_POST),
    Route("/api/v1/query_exemplars", query_exemplars, R, GET_POST),
    # metadata (api.series)
    Route("/api/v1/labels", series.labels, R, GET_POST),
    Route("/api/v1/series", series.series, R, GET_POST),
    Route("/api/v1/label/{name}/values", series.label_values, R),
    Route("/api/v1/metadata", remote.metadata, R),
    # status (api.status)
    Route("/api/v1/status/buildinfo", status.buildinfo, R),
    Route("/api/v1/status/flags", status.flags, R),
    Route("/api/v1/status/runtimeinfo", status.runtimeinfo, R),
    Route("/api/v1/status/tsdb", status.tsdb_status, R),
    Route("/api/v1/status/walreplay", status.walreplay_status, R),
    Route("/api/v1/status/config", status.config_status, R),
    # scraping (scrape.api)
    Route("/api/v1/targets", scrape.targets, R),
    Route("/api/v1/scrape_pools", scrape.scrape_pools, R),
    # federation, remote read and write, ingestion (api.federate, remote.routes)
    Route("/federate", federate.federate, R, GET_POST),
    Route("/api/v1/read", remote.remote_read, R, POST),
    Route("/api/v1/write", remote.remote_write, W, POST),
    Route("/api/v1/import/prometheus", remote.import_prometheus, W, POST),
    Route("/api/v1/otlp/v1/metrics", remote.otlp_metrics, W, POST),
    # the server itself
    Route("/metrics", metrics_handler, R),
    Route("/-/reload", lifecycle.reload_handler, A, ANY),
    Route("/-/quit", lifecycle.quit_handler, A, ANY),
    Route("/-/healthy", status.healthy, P, ANY),
    Route("/-/ready", status.ready, P, ANY),
    # plug-ins add their entries above this line (rules, alerts, demo, AI)
    Route("/api/v1/{tail:.*}", method_not_allowed_or_404, R, ANY),
)

ROUTE_TABLE: web.AppKey[dict[AbstractRoute, Route]] = web.AppKey("omtsdb_route_table", dict)


def add_routes(app: web.Application, routes: Sequence[Route] = ROUTES) -> None:
    """Register ``routes`` in order and remember which entry each aiohttp route serves."""
    table: dict[AbstractRoute, Route] = {}
    r = app.router
    for route in routes:
        methods = ("HEAD", *route.methods) if "GET" in route.methods else route.methods
        for m in methods:
            table[r.add_route(m, route.path, route.handler)] = route
    app[ROUTE_TABLE] = table


def route_for(req: web.Request) -> Route | None:
    """The table entry ``req`` matched (None for unmatched paths: 404 before any handler)."""
    return req.app[ROUTE_TABLE].get(req.match_info.route)
