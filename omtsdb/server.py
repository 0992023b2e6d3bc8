"""The running server over the services of the composition root (``omtsdb.compose``).

``Server.start`` loads the configuration (a bad file stops the start with a clear error),
serves the API and starts scraping; ``reload`` re-reads the file and applies it, keeping the
running configuration when the new one is invalid; ``stop`` stops scraping, then the HTTP
server. SIGHUP reloads; SIGINT and SIGTERM stop. The caller closes the DB (flushing the WAL).
"""

from __future__ import annotations

import asyncio
import logging
import signal
from dataclasses import dataclass, field

from aiohttp import web

from omtsdb.api.app import create_app
from omtsdb.api.runtime import DEFAULT_CONFIG_YAML
from omtsdb.api.services import APIOptions
from omtsdb.compose import ServiceOptions, build_services
from omtsdb.config import Config, load_config
from omtsdb.config.redact import redacted_yaml
from omtsdb.promql.engine import Engine
from omtsdb.query.service import QueryLimits
from omtsdb.tsdb.db import DB

log = logging.getLogger("omtsdb")


@dataclass
class ServerOptions:
    host: str = "0.0.0.0"
    port: int = 9090
    config_file: str = ""
    enable_lifecycle: bool = False
    api: APIOptions = field(default_factory=APIOptions)
    limits: QueryLimits | None = None
    scrape_threads: int = 2


class Server:
    def __init__(self, db: DB, engine: Engine, opts: ServerOptions) -> None:
        self.db = db
        self.engine = engine
        self.opts = opts
        self.config = Config()
        self.services = build_services(
            db,
            engine,
            ServiceOptions(
                api=opts.api,
                limits=opts.limits,
                enable_lifecycle=opts.enable_lifecycle,
                scrape_threads=opts.scrape_threads,
            ),
        )
        self.scraper = self.services.scraper
        self.remote_write = self.services.remote_write
        self.lifecycle = self.services.lifecycle
        self.stopped = asyncio.Event()
        self.lifecycle.reload = self.reload
        self.lifecycle.quit = self.stopped.set
        self.app: web.Application | None = None
        self._runner: web.AppRunner | None = None
        self.port = opts.port

    def load(self) -> Config:
        cfg = load_config(self.opts.config_file) if self.opts.config_file else Config()
        if cfg.rule_files or cfg.alerting.alertmanagers:
            log.warning(
                "rule_files/alerting are validated but not acted on: omtsdb does not evaluate "
                "rules or send alerts yet"
            )
        return cfg

    async def start(self) -> None:
        self.config = self.load()
        self.app = create_app(self.services.api)
        self._apply_runtime(self.config)
        self._runner = web.AppRunner(self.app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.opts.host, self.opts.port)
        await site.start()
        server = getattr(site, "_server", None)
        if server is not None and server.sockets:
            self.port = server.sockets[0].getsockname()[1]
        self.remote_write.apply(self.config.remote_write, self.config.global_.external_labels)
        await self.scraper.apply(self.config)
        log.info("omtsdb listening on %s:%d", self.opts.host, self.port)

    def _apply_runtime(self, cfg: Config) -> None:
        self.services.runtime.update(
            external_labels=cfg.global_.external_labels,
            config_yaml=redacted_yaml(cfg.source) or DEFAULT_CONFIG_YAML,
        )

    async def reload(self) -> None:
        """Re-read the configuration file; an invalid one raises and changes nothing."""
        loop = asyncio.get_running_loop()
        cfg = await loop.run_in_executor(None, self.load)
        self.remote_write.apply(cfg.remote_write, cfg.global_.external_labels)
        await self.scraper.apply(cfg)
        self._apply_runtime(cfg)
        self.config = cfg
        log.info("configuration reloaded from %s", self.opts.config_file or "(defaults)")

    async def _reload_on_signal(self) -> None:
        try:
            await self.lifecycle.do_reload()
        except Exception as e:
            log.error("error reloading config: %s", e)

    async def run(self) -> None:
        """Start, then serve until SIGINT/SIGTERM or ``/-/quit``."""
        await self.start()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self.stopped.set)
        loop.add_signal_handler(signal.SIGHUP, lambda: loop.create_task(self._reload_on_signal()))
        try:
            await self.stopped.wait()
        finally:
            await self.stop()

    async def stop(self) -> None:
        await self.scraper.stop()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        await asyncio.get_running_loop().run_in_executor(None, self.services.close)
