"""``/-/reload`` and ``/-/quit`` (with ``--web.enable-lifecycle``) and the reload bookkeeping
that ``/api/v1/status/runtimeinfo`` reports. Texts and codes as Prometheus answers them."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from aiohttp import web

from omtsdb.api.http import text_response


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


def _gate(req: web.Request) -> web.Response | None:
    if not req.app[LIFECYCLE].enabled:
        return text_response(403, "Lifecycle API is not enabled.")
    if req.method not in ("POST", "PUT"):
        return text_response(405, "Only POST or PUT requests allowed")
    return None


async def reload_handler(req: web.Request) -> web.Response:
    refused = _gate(req)
    if refused is not None:
        return refused
    try:
        await req.app[LIFECYCLE].do_reload()
    except Exception as e:
        return text_response(500, f"failed to reload config: {e}\n")
    return web.Response(status=200)


async def quit_handler(req: web.Request) -> web.Response:
    refused = _gate(req)
    if refused is not None:
        return refused
    lc = req.app[LIFECYCLE]
    if lc.quit is not None:
        lc.quit()
    return text_response(200, "Requesting termination... Goodbye!")
