"""HTTP instrumentation, ``/metrics``, and the 405 answer for known paths.

``metrics_mw`` counts every request by the *route pattern* that served it, written as
Prometheus names its handlers (``/api/v1/label/:name/values``; the ``/api/v1`` catch-all is
``/api/v1/*path``); requests no route matched are not counted, as in Prometheus.
"""

from __future__ import annotations

import asyncio
import re
import time

from aiohttp import web

from omtsdb.api.http import Handler
from omtsdb.obs.metrics import (
    HTTP_DURATION,
    HTTP_REQUESTS,
    HTTP_RESPONSE_SIZE,
    runtime_families,
)
from omtsdb.obs.registry import REGISTRY, Collector, render_text

METRICS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8; escaping=underscores"
_VAR = re.compile(r"\{(\w+)(?::[^}]*)?\}")

APP_COLLECTORS: web.AppKey[list[Collector]] = web.AppKey("omtsdb_collectors", list)


def handler_label(req: web.Request) -> str | None:
    """The route pattern that matched ``req`` in Prometheus's notation (None if none did)."""
    resource = req.match_info.route.resource
    if resource is None:
        return None
    canon = resource.canonical
    if canon == "/api/v1/{tail}":
        return "/api/v1/*path"
    return _VAR.sub(lambda m: ":" + m.group(1), canon)


def _size(resp: web.StreamResponse) -> int:
    n = resp.content_length
    return int(n) if n is not None else int(resp.body_length)


@web.middleware
async def metrics_mw(req: web.Request, handler: Handler) -> web.StreamResponse:
    t0 = time.perf_counter()
    status, size = 500, 0
    try:
        resp = await handler(req)
        status, size = resp.status, _size(resp)
        return resp
    except web.HTTPException as e:
        status, size = e.status, len(e.text or "")
        raise
    except asyncio.CancelledError:
        status = 0  # the client went away: no answer to count
        raise
    finally:
        h = handler_label(req)
        if h is not None and status:
            HTTP_REQUESTS.labels(str(status), h).inc()
            HTTP_DURATION.labels(h).observe(time.perf_counter() - t0)
            HTTP_RESPONSE_SIZE.labels(h).observe(size)


async def metrics_handler(req: web.Request) -> web.Response:
    fams = REGISTRY.collect()
    for c in req.app[APP_COLLECTORS]:
        fams.extend(c())
    fams.extend(runtime_families())
    return web.Response(body=render_text(fams), headers={"Content-Type": METRICS_CONTENT_TYPE})


async def method_not_allowed_or_404(req: web.Request) -> web.Response:
    """For the ``/api/v1`` catch-all: 405 when another route serves this path with other
    methods (as Prometheus's router answers), else 404."""
    mine = req.match_info.route.resource
    allowed: set[str] = set()
    for resource in req.app.router.resources():
        if resource is mine:
            continue
        match, methods = await resource.resolve(req)
        if match is None:
            allowed |= methods
    if allowed:
        return web.Response(
            status=405,
            text="Method Not Allowed\n",
            headers={"Allow": ", ".join(sorted(allowed))},
        )
    return web.Response(text="404 page not found\n", status=404)
