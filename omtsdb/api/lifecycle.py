"""``/-/reload`` and ``/-/quit`` (with ``--web.enable-lifecycle``) and the reload bookkeeping
that ``/api/v1/status/runtimeinfo`` reports. Texts and codes as Prometheus answers them."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from aiohttp import web


@dataclass
class Lifecycle:
    enabled: bool = False
    reload: Callable[[], Awaitable[None]] | None = None
    quit: Callable[[], None] | None = None
    reload_success: bool = True
    last_config_time: float = field(default_factory=time.time)

    async def do_reload(self) -> None:
        """Run the reload, recording success or failure; re-raises the failure."""
        if self.reload is None:
            return
        try:
            await self.reload()
        except Exception:
            self.reload_success = False
            raise
        self.reload_success = True
        self.last_config_time = time.time()


LIFECYCLE: web.AppKey[Lifecycle] = web.AppKey("omtsdb_lifecycle", Lifecycle)


def _text(status: int, text: str) -> web.Response:
    return web.Response(status=status, text=text, content_type="text/plain", charset="utf-8")


def _gate(req: web.Request) -> web.Response | None:
    if not req.app[LIFECYCLE].enabled:
        return _text(403, "Lifecycle API is not enabled.")
    if req.method not in ("POST", "PUT"):
        return _text(405, "Only POST or PUT requests allowed")
    return None


async def reload_handler(req: web.Request) -> web.Response:
    refused = _gate(req)
    if refused is not None:
        return refused
    try:
        await req.app[LIFECYCLE].do_reload()
    except Exception as e:
        return _text(500, f"failed to reload config: {e}\n")
    return web.Response(status=200)


async def quit_handler(req: web.Request) -> web.Response:
    refused = _gate(req)
    if refused is not None:
        return refused
    lc = req.app[LIFECYCLE]
    if lc.quit is not None:
        lc.quit()
    return _text(200, "Requesting termination... Goodbye!")


def register_lifecycle_routes(app: web.Application, lifecycle: Lifecycle) -> None:
    app[LIFECYCLE] = lifecycle
    app.router.add_route("*", "/-/reload", reload_handler)
    app.router.add_route("*", "/-/quit", quit_handler)
