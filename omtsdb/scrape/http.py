"""The scraper's HTTP side: one aiohttp session per scrape pool, Prometheus's Accept header,
auth, TLS, timeouts, a body size limit and content-type negotiation."""

from __future__ import annotations

import base64
import ssl
from pathlib import Path

import aiohttp

from omtsdb import __version__
from omtsdb.config.model import HTTPClientConfig, ScrapeConfig
from omtsdb.model.exposition import Format
from omtsdb.scrape.target import Target

# the header values Prometheus 3 sends for each scrape protocol
PROTOCOL_HEADERS = {
    "OpenMetricsText1.0.0": "application/openmetrics-text;version=1.0.0",
    "OpenMetricsText0.0.1": "application/openmetrics-text;version=0.0.1",
    "PrometheusText1.0.0": "text/plain;version=1.0.0",
    "PrometheusText0.0.4": "text/plain;version=0.0.4",
}
FALLBACK_FORMATS: dict[str, Format] = {
    "OpenMetricsText1.0.0": "openmetrics",
    "OpenMetricsText0.0.1": "openmetrics",
    "PrometheusText1.0.0": "text",
    "PrometheusText0.0.4": "text",
}
USER_AGENT = f"omtsdb/{__version__}"


class ScrapeFailed(Exception):
    """A scrape that produced no usable body; the message is the target's lastError."""


def accept_header(protocols: tuple[str, ...]) -> str:
    """``application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.6,...,*/*;q=0.1``
    as Prometheus 3 builds it: weights fall from 0.6 in steps of 0.1 in the configured order.
    The protobuf exposition is not parsed here, so it is never asked for."""
    weight = len(PROTOCOL_HEADERS) + 2
    parts = []
    for p in protocols:
        if p in PROTOCOL_HEADERS:
            val = PROTOCOL_HEADERS[p]
            if p in ("PrometheusText1.0.0", "OpenMetricsText1.0.0"):
                val += ";escaping=allow-utf-8"
            parts.append(f"{val};q=0.{weight}")
        weight -= 1
    if not parts:
        parts.append("text/plain;version=0.0.4;q=0.2")
    parts.append(f"*/*;q=0.{max(weight, 1)}")
    return ",".join(parts)


def _ssl_context(cfg: HTTPClientConfig) -> ssl.SSLContext | bool:
    t = cfg.tls_config
    if not (t.ca_file or t.cert_file or t.insecure_skip_verify):
        return True
    ctx = ssl.create_default_context(cafile=t.ca_file or None)
    if t.cert_file:
        ctx.load_cert_chain(t.cert_file, t.key_file or None)
    if t.insecure_skip_verify:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    return ctx


def auth_header(cfg: HTTPClientConfig) -> str | None:
    """The Authorization header for ``cfg``; secret files are read at each request, as
    Prometheus does, so rotated credentials take effect without a reload."""
    if cfg.basic_auth is not None:
        b = cfg.basic_auth
        pw = Path(b.password_file).read_text().strip() if b.password_file else b.password
        return "Basic " + base64.b64encode(f"{b.username}:{pw}".encode()).decode()
    if cfg.authorization is not None:
        a = cfg.authorization
        cred = Path(a.credentials_file).read_text().strip() if a.credentials_file else a.credentials
        return f"{a.type or 'Bearer'} {cred}"
    return None


def content_format(content_type: str, fallback: str) -> Format:
    mt = content_type.split(";", 1)[0].strip().lower()
    if mt == "application/openmetrics-text":
        return "openmetrics"
    if mt == "text/plain":
        return "text"
    if fallback in FALLBACK_FORMATS:
        return FALLBACK_FORMATS[fallback]
    raise ScrapeFailed(
        f'received unsupported Content-Type "{content_type}" and no '
        "fallback_scrape_protocol specified for target"
    )


class ScrapeClient:
    def __init__(self, cfg: ScrapeConfig) -> None:
        self.cfg = cfg
        self.accept = accept_header(cfg.scrape_protocols)
        self._session: aiohttp.ClientSession | None = None

    def _get_session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            conn = aiohttp.TCPConnector(ssl=_ssl_context(self.cfg.http), limit=0)
            self._session = aiohttp.ClientSession(
                connector=conn,
                auto_decompress=True,
                trust_env=False,
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def fetch(self, target: Target) -> tuple[bytes, Format]:
        cfg = self.cfg
        headers = {
            "Accept": self.accept,
            "User-Agent": USER_AGENT,
            "X-Prometheus-Scrape-Timeout-Seconds": f"{target.timeout_ms / 1000:g}",
            "Accept-Encoding": "gzip" if cfg.enable_compression else "identity",
        }
        auth = auth_header(cfg.http)
        if auth:
            headers["Authorization"] = auth
        timeout = aiohttp.ClientTimeout(total=target.timeout_ms / 1000)
        limit = cfg.body_size_limit
        async with self._get_session().get(
            target.url,
            headers=headers,
            timeout=timeout,
            allow_redirects=cfg.http.follow_redirects,
            proxy=cfg.http.proxy_url or None,
        ) as resp:
            if resp.status != 200:
                raise ScrapeFailed(f"server returned HTTP status {resp.status} {resp.reason}")
            fmt = content_format(resp.headers.get("Content-Type", ""), cfg.fallback_scrape_protocol)
            if limit:
                body = await resp.content.read(limit + 1)
                if len(body) > limit:
                    raise ScrapeFailed(f"body size limit exceeded (limit: {limit} bytes)")
            else:
                body = await resp.read()
        return body, fmt
