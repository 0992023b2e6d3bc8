"""The composition root: the one place where the running parts are built and wired. Only this
module (with the server and the CLI that call it) knows the concrete storage (``tsdb.DB``);
everything else gets narrow types: ``Queryable`` for reads, the query service (and its
``instant_fn``/``range_fn`` callables) for PromQL, the ``TSDBStatus`` protocol for figures,
the remote-write state for ingestion, the metadata store.

Where later parts plug in (each a few lines in :func:`build_services`, marked ``plug:``):

- a PostgreSQL (or other) secondary: ``queryable = FanoutStorage(db, {"postgres": tier})``;
  every reader (queries, label and series look-ups, federation, remote read) then sees the
  merged data and a failing tier as a warning;
- the result cache: wrap ``query.instant_fn``/``query.range_fn`` (or the service) before
  handing them on;
- the rule manager and the Alertmanager notifier: built from ``query.instant_fn``, the DB as
  ``Appendable``, the outbound HTTP client (``omtsdb.httpclient``), started by the server;
- the demo fleet: an ``Appendable`` writer and its routes;
- the AI layer: ``query.instant_fn``/``range_fn`` and ``queryable`` for metadata;
- authentication: ``APIServices.middlewares`` (it reads each route's permission with
  ``api.routes.route_for``).
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from aiohttp import web

from omtsdb.api.app import create_app
from omtsdb.api.lifecycle import Lifecycle
from omtsdb.api.runtime import Runtime
from omtsdb.api.services import APIOptions, APIServices
from omtsdb.obs.metrics import WAL_FSYNC
from omtsdb.promql.engine import Engine
from omtsdb.query.service import QueryLimits, QueryService
from omtsdb.remote.routes import RemoteOptions, RemoteState, remote_state
from omtsdb.remote.upstream import RemoteWriteManager
from omtsdb.remote.write import RemoteWriter
from omtsdb.scrape.manager import ScrapeManager
from omtsdb.storage.interface import Queryable
from omtsdb.storage.metadata import MetadataStore
from omtsdb.tsdb.db import DB
from omtsdb.tsdb.status import DBStatus


@dataclass
class ServiceOptions:
    api: APIOptions = field(default_factory=APIOptions)
    limits: QueryLimits | None = None  # None: from api.max_concurrency and the engine
    enable_lifecycle: bool = False
    scrape_threads: int = 2


@dataclass
class Services:
    db: DB
    engine: Engine
    queryable: Queryable  # what every reader reads: the DB, or a fanout over it
    query: QueryService
    metadata: MetadataStore
    scrape_pool: ThreadPoolExecutor
    scraper: ScrapeManager
    remote_write: RemoteWriteManager  # to upstreams (remote_write in the configuration)
    remote: RemoteState  # the receiving side: remote write, read, import, OTLP
    lifecycle: Lifecycle
    runtime: Runtime
    api: APIServices

    async def stop(self) -> None:
        """Stop scraping and sending, then release the pools (the DB stays open: its owner
        closes it, flushing the WAL)."""
        await self.scraper.stop()
        await asyncio.get_running_loop().run_in_executor(None, self.close)

    def close(self) -> None:
        self.remote_write.close()
        if self.remote_write.on_commit in self.db.commit_listeners:
            self.db.commit_listeners.remove(self.remote_write.on_commit)
        self.query.close()
        self.remote.close()
        self.scrape_pool.shutdown(wait=True)


def build_services(
    db: DB,
    engine: Engine,
    opts: ServiceOptions | None = None,
    *,
    scraper: ScrapeManager | None = None,
) -> Services:
    opts = opts or ServiceOptions()
    api_opts = opts.api
    queryable: Queryable = db  # plug: FanoutStorage(db, {"postgres": tier})
    metadata = MetadataStore()
    limits = opts.limits or QueryLimits(
        timeout_s=engine.opts.timeout_s, max_concurrency=api_opts.max_concurrency
    )
    query = QueryService(engine, queryable, limits)  # plug: the result cache wraps this
    scrape_pool = ThreadPoolExecutor(
        max_workers=max(1, opts.scrape_threads), thread_name_prefix="scrape"
    )
    if scraper is None:
        scraper = ScrapeManager(db, scrape_pool, metadata)
    upstream = RemoteWriteManager(db.head.labels_of, metadata.latest)
    db.commit_listeners.append(upstream.on_commit)
    remote = remote_state(
        queryable,
        metadata,
        writer=RemoteWriter(db, metadata),
        appendable=db,
        opts=RemoteOptions(enable_remote_write_receiver=api_opts.remote_write_receiver),
    )
    if db.wal is not None:
        db.wal.fsync_observer = WAL_FSYNC.observe
    lifecycle = Lifecycle(enabled=opts.enable_lifecycle)
    runtime = Runtime(api_opts.external_labels, api_opts.config_yaml)
    api = APIServices(
        queryable=queryable,
        query=query,
        runtime=runtime,
        lifecycle=lifecycle,
        metadata=metadata,
        scrape=scraper,
        remote=remote,
        options=api_opts,
        tsdb=DBStatus(db),
        middlewares=(),  # plug: authentication
    )
    # plug: rule manager, notifier, demo fleet, AI layer (fields of Services and APIServices)
    return Services(
        db,
        engine,
        queryable,
        query,
        metadata,
        scrape_pool,
        scraper,
        upstream,
        remote,
        lifecycle,
        runtime,
        api,
    )


def build_app(
    db: DB,
    engine: Engine | None = None,
    opts: APIOptions | None = None,
    *,
    scraper: ScrapeManager | None = None,
) -> web.Application:
    """The HTTP application over ``db`` with every service built (tests, embedding); the
    services are released when the app is cleaned up."""
    services = build_services(
        db, engine or Engine(), ServiceOptions(api=opts or APIOptions()), scraper=scraper
    )
    app = create_app(services.api)

    async def _close(app: web.Application) -> None:
        await asyncio.get_running_loop().run_in_executor(None, services.close)

    app.on_cleanup.append(_close)
    return app
