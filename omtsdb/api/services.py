"""What the HTTP layer is handed by the composition root (``omtsdb.compose``): the services
behind the routes, as narrow types. The API never builds a service and never sees a ``DB``:
queries go through the query service, reads through ``Queryable``, TSDB figures through the
``TSDBStatus`` protocol, writes through the remote-write state.

Later parts plug in here: a field per service (the rule manager, the demo fleet, the AI
layer), and ``middlewares`` for authentication (run after the metrics middleware and before
the error map, so refused requests are counted and answered in the envelope).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from aiohttp import web
from aiohttp.typedefs import Middleware

from omtsdb.api.lifecycle import Lifecycle
from omtsdb.api.runtime import DEFAULT_CONFIG_YAML, Runtime
from omtsdb.model.labels import Labels
from omtsdb.obs.looplag import LoopLagMonitor
from omtsdb.query.service import QueryService
from omtsdb.remote.routes import RemoteState
from omtsdb.scrape.manager import ScrapeManager
from omtsdb.storage.interface import Queryable
from omtsdb.storage.metadata import MetadataStore
from omtsdb.storage.status import TSDBStatus


@dataclass
class APIOptions:
    """Settings of the HTTP layer that are not services (the composition root turns the
    rest into services: ``max_concurrency`` into the query limits, ``remote_write_receiver``
    into the remote options, the two initial values into the ``Runtime``)."""

    flags: dict[str, str] = field(default_factory=dict)
    started: float = field(default_factory=time.time)
    max_concurrency: int = 20
    remote_write_receiver: bool = True
    external_labels: Labels = field(default_factory=Labels)
    config_yaml: str = DEFAULT_CONFIG_YAML


@dataclass
class APIServices:
    queryable: Queryable
    query: QueryService
    runtime: Runtime
    lifecycle: Lifecycle
    metadata: MetadataStore
    scrape: ScrapeManager
    remote: RemoteState
    options: APIOptions = field(default_factory=APIOptions)
    tsdb: TSDBStatus | None = None  # None: a storage without an embedded TSDB
    middlewares: Sequence[Middleware] = ()  # e.g. authentication
    loop_lag: LoopLagMonitor = field(default_factory=LoopLagMonitor)


SERVICES: web.AppKey[APIServices] = web.AppKey("omtsdb_services", APIServices)
