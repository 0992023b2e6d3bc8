"""``/api/v1/targets`` and ``/api/v1/scrape_pools`` in Prometheus's shapes."""

from __future__ import annotations

import socket
import time
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from aiohttp import web

from omtsdb.api.envelope import success
from omtsdb.config.units import format_duration_ms as format_duration
from omtsdb.scrape.manager import ScrapeManager
from omtsdb.scrape.target import Target

MANAGER: web.AppKey[ScrapeManager] = web.AppKey("omtsdb_scrape_manager", ScrapeManager)
_LOCAL = {"localhost", "127.0.0.1", "::1", "[::1]"}


def _json(data: Any) -> web.Response:
    return web.Response(body=success(data), content_type="application/json")


def rfc3339(ms: int) -> str:
    if not ms:
        return "0001-01-01T00:00:00Z"
    secs, frac = divmod(ms, 1000)
    base = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs))
    return f"{base}.{frac:03d}Z" if frac else f"{base}Z"


def global_url(url: str) -> str:
    """The scrape URL with a loopback host replaced by this machine's name, as Prometheus
    shows it."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if host not in _LOCAL:
        return url
    netloc = socket.gethostname() + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def _active(t: Target) -> dict[str, Any]:
    return {
        "discoveredLabels": t.discovered.to_dict(),
        "labels": t.labels.to_dict(),
        "scrapePool": t.scrape_pool,
        "scrapeUrl": t.url,
        "globalUrl": global_url(t.url),
        "lastError": t.last_error,
        "lastScrape": rfc3339(t.last_scrape_ms),
        "lastScrapeDuration": round(t.last_duration_s, 9),
        "health": t.health,
        "scrapeInterval": format_duration(t.interval_ms),
        "scrapeTimeout": format_duration(t.timeout_ms),
    }


async def targets(req: web.Request) -> web.Response:
    mgr = req.app[MANAGER]
    state = req.query.get("state", "").lower()
    if state not in ("", "any", "active", "dropped"):
        state = "none"  # Prometheus answers an unknown state with empty lists
    pool_filter = req.query.get("scrapePool", "")
    pools = [p for name, p in sorted(mgr.pools.items()) if not pool_filter or name == pool_filter]
    out: dict[str, Any] = {}
    if state in ("", "any", "active"):
        out["activeTargets"] = [
            _active(t)
            for p in pools
            for t in sorted(p.targets(), key=lambda t: (t.labels.sort_key(), t.url))
        ]
    else:
        out["activeTargets"] = []
    if state in ("", "any", "dropped"):
        out["droppedTargets"] = [
            {"discoveredLabels": d.to_dict(), "scrapePool": p.cfg.job_name}
            for p in pools
            for d in p.dropped
        ]
    else:
        out["droppedTargets"] = []
    out["droppedTargetCounts"] = {p.cfg.job_name: len(p.dropped) for p in pools}
    return _json(out)


async def scrape_pools(req: web.Request) -> web.Response:
    return _json({"scrapePools": sorted(req.app[MANAGER].pools)})
