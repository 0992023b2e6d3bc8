"""The aiohttp application: the middlewares, the route table (``api.routes``) and the state each
handler reads, all from the services the composition root hands in (``api.services``).

Handlers by concern: ``api.query`` (PromQL), ``api.series`` (labels and series),
``api.status`` (status, health), ``api.federate``, ``api.exemplars``, ``api.instrument``
(``/metrics``, request metrics), ``api.lifecycle``; ingestion and remote storage in
``remote.routes``, scrape targets in ``scrape.api``.
"""

from __future__ import annotations

from aiohttp import web

from omtsdb.api.federate import FEDERATE, FederateState
from omtsdb.api.http import errors_mw
from omtsdb.api.instrument import APP_COLLECTORS, metrics_mw
from omtsdb.api.lifecycle import LIFECYCLE
from omtsdb.api.routes import add_routes
from omtsdb.api.runtime import RUNTIME
from omtsdb.api.services import SERVICES, APIServices
from omtsdb.obs.metrics import tsdb_collector
from omtsdb.remote.routes import REMOTE
from omtsdb.scrape.api import MANAGER

MAX_BODY = 32 * 2**20


def create_app(services: APIServices) -> web.Application:
    """The HTTP application over ``services``. Closing the services is the caller's (the
    composition root's) business; the app only starts and stops the loop-lag monitor."""
    app = web.Application(
        middlewares=[metrics_mw, *services.middlewares, errors_mw],  # type: ignore[list-item]
        client_max_size=MAX_BODY,
    )
    app[SERVICES] = services
    app[RUNTIME] = services.runtime
    app[LIFECYCLE] = services.lifecycle
    app[MANAGER] = services.scrape
    app[REMOTE] = services.remote
    app[FEDERATE] = FederateState(
        services.queryable,
        services.runtime,
        services.query.engine.opts.lookback_delta_ms,
        services.query.run,
    )
    app[APP_COLLECTORS] = [tsdb_collector(services.tsdb)] if services.tsdb is not None else []
    add_routes(app)

    async def start_monitor(app: web.Application) -> None:
        services.loop_lag.start()

    async def stop_monitor(app: web.Application) -> None:
        await services.loop_lag.stop()

    app.on_startup.append(start_monitor)
    app.on_cleanup.append(stop_monitor)
    return app
