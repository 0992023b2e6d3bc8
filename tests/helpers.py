"""Small helpers shared by the tests: an aiohttp test client around an app, stopping a
subprocess for good."""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

ClientFn = Callable[[TestClient[Any, Any]], Awaitable[None]]


def run_client(make_app: Callable[[], web.Application], fn: ClientFn) -> None:
    """Serve ``make_app()`` on a loopback port and run ``fn`` with a client for it."""

    async def main() -> None:
        client: TestClient[Any, Any] = TestClient(TestServer(make_app(), host="127.0.0.1"))
        await client.start_server()
        try:
            await fn(client)
        finally:
            await client.close()

    asyncio.run(main())


def stop_process(p: subprocess.Popen[Any], timeout: float = 15) -> None:
    """Terminate ``p``, and kill it if it does not exit within ``timeout`` seconds."""
    p.terminate()
    try:
        p.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()
