"""The one outbound HTTP client (aiohttp), configured by a Prometheus ``HTTPClientConfig``: used by
scraping, by remote write to upstreams, and by the Alertmanager notifier.

What it honours, per request:

- ``tls_config``: ``ca``/``ca_file`` (else the system's roots), ``cert``/``cert_file`` with
  ``key``/``key_file`` (client certificates), ``server_name`` (SNI and the name checked),
  ``insecure_skip_verify``, ``min_version``/``max_version``;
- ``basic_auth`` (``username``/``username_file``, ``password``/``password_file``),
  ``authorization`` (``type``, ``credentials``/``credentials_file``; ``bearer_token*`` arrive
  as this): secret files are read at each request, so rotated credentials apply without a
  reload, as Prometheus reads them;
- ``proxy_url`` with ``no_proxy`` (host names, domain suffixes, IPs and CIDRs bypassing it),
  ``proxy_from_environment`` (``HTTP_PROXY``/``HTTPS_PROXY``/``NO_PROXY``);
- ``follow_redirects``; a total timeout per request; a body size limit.

Not honoured: ``enable_http2`` (aiohttp speaks HTTP/1.1 only; the key is accepted and
documented). ``oauth2``, ``http_headers`` and ``proxy_connect_header`` are refused by the
configuration loader.

API::

    client = OutboundClient(cfg)                      # one per configuration (a connection pool)
    resp = await client.request("POST", url, data=body, headers={...}, timeout_s=10)
    resp.status, resp.headers, resp.body
    await client.close()

    SyncClient(cfg)                                   # the same for a thread of its own
"""

from __future__ import annotations

import asyncio
import base64
import ipaddress
import os
import ssl
import tempfile
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import aiohttp
from multidict import CIMultiDictProxy

from omtsdb import __version__
from omtsdb.config.model import HTTPClientConfig, TLSConfig

USER_AGENT = f"omtsdb/{__version__}"
_TLS_VERSIONS = {
    "TLS10": ssl.TLSVersion.TLSv1,
    "TLS11": ssl.TLSVersion.TLSv1_1,
    "TLS12": ssl.TLSVersion.TLSv1_2,
    "TLS13": ssl.TLSVersion.TLSv1_3,
}


class BodyTooLarge(Exception):
    """The answer's body passed the ``max_body`` given to ``request``."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"body size limit exceeded (limit: {limit} bytes)")
        self.limit = limit


@dataclass(frozen=True, slots=True)
class Response:
    status: int
    reason: str
    headers: CIMultiDictProxy[str]
    body: bytes


def _read_secret(path: str) -> str:
    return Path(path).read_text().strip()


def auth_header(cfg: HTTPClientConfig) -> str | None:
    """The ``Authorization`` header for ``cfg`` (secret files read now)."""
    if cfg.basic_auth is not None:
        b = cfg.basic_auth
        user = _read_secret(b.username_file) if b.username_file else b.username
        pw = _read_secret(b.password_file) if b.password_file else b.password
        return "Basic " + base64.b64encode(f"{user}:{pw}".encode()).decode()
    if cfg.authorization is not None:
        a = cfg.authorization
        cred = _read_secret(a.credentials_file) if a.credentials_file else a.credentials
        return f"{a.type or 'Bearer'} {cred}"
    return None


def ssl_context(tls: TLSConfig) -> ssl.SSLContext | None:
    """The TLS context for ``tls`` (None: aiohttp's default verification)."""
    if tls == TLSConfig():
        return None
    ctx = ssl.create_default_context(cafile=tls.ca_file or None, cadata=tls.ca or None)
    if tls.cert_file or tls.cert:
        _load_cert_chain(ctx, tls)
    if tls.insecure_skip_verify:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    if tls.min_version:
        ctx.minimum_version = _TLS_VERSIONS[tls.min_version]
    if tls.max_version:
        ctx.maximum_version = _TLS_VERSIONS[tls.max_version]
    return ctx


def _load_cert_chain(ctx: ssl.SSLContext, tls: TLSConfig) -> None:
    """``ssl`` loads client certificates from files only: inline PEMs go through files in a
    private temporary directory, removed at once."""
    if tls.cert_file and (tls.key_file or not tls.key):
        ctx.load_cert_chain(tls.cert_file, tls.key_file or None)
        return
    with tempfile.TemporaryDirectory(prefix="omtsdb-tls-") as d:
        cert = tls.cert_file or os.path.join(d, "cert.pem")
        key = tls.key_file or os.path.join(d, "key.pem")
        if tls.cert:
            Path(cert).write_text(tls.cert)
        if tls.key:
            fd = os.open(key, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(tls.key)
        ctx.load_cert_chain(cert, key if (tls.key or tls.key_file) else None)


def _bypass(host: str, no_proxy: str) -> bool:
    """Does ``no_proxy`` (comma-separated names, ``.domain`` suffixes, IPs, CIDRs) cover
    ``host``?"""
    host = host.strip("[]").lower()
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        ip = None
    for raw in no_proxy.split(","):
        entry = raw.strip().lower()
        if not entry:
            continue
        if entry == "*":
            return True
        if ip is not None:
            try:
                if ip in ipaddress.ip_network(entry, strict=False):
                    return True
            except ValueError:
                pass
            continue
        name = entry.lstrip(".")
        if host == name or host.endswith("." + name):
            return True
    return False


def proxy_for(cfg: HTTPClientConfig, url: str) -> str | None:
    """The proxy to use for ``url`` (None: connect directly)."""
    host = urlsplit(url).hostname or ""
    if cfg.proxy_url:
        return None if cfg.no_proxy and _bypass(host, cfg.no_proxy) else cfg.proxy_url
    if cfg.proxy_from_environment:
        env = urllib.request.getproxies_environment()
        if _bypass(host, env.get("no", "")):
            return None
        return env.get(urlsplit(url).scheme.lower()) or None
    return None


class OutboundClient:
    """HTTP requests as ``cfg`` says; one connection pool. Create and use it on one event loop."""

    def __init__(
        self, cfg: HTTPClientConfig, *, user_agent: str = USER_AGENT, auto_decompress: bool = True
    ) -> None:
        self.cfg = cfg
        self.user_agent = user_agent
        self.auto_decompress = auto_decompress
        self._ssl = ssl_context(cfg.tls_config)
        self._session: aiohttp.ClientSession | None = None

    def _get_session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            conn = aiohttp.TCPConnector(ssl=self._ssl if self._ssl is not None else True, limit=0)
            self._session = aiohttp.ClientSession(
                connector=conn, auto_decompress=self.auto_decompress, trust_env=False
            )
        return self._session

    async def request(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        data: bytes | None = None,
        timeout_s: float = 30.0,
        max_body: int = 0,
        truncate: bool = False,
    ) -> Response:
        """Send one request and read the answer: all of it, or at most ``max_body`` bytes
        when that is > 0 (``BodyTooLarge`` past it, or the first ``max_body`` bytes kept when
        ``truncate``). Network errors are aiohttp's ``ClientError`` subclasses and
        ``TimeoutError``."""
        h = {"User-Agent": self.user_agent, **(headers or {})}
        auth = auth_header(self.cfg)
        if auth:
            h["Authorization"] = auth
        tls = self.cfg.tls_config
        async with self._get_session().request(
            method,
            url,
            headers=h,
            data=data,
            timeout=aiohttp.ClientTimeout(total=timeout_s),
            allow_redirects=self.cfg.follow_redirects,
            proxy=proxy_for(self.cfg, url),
            server_hostname=tls.server_name or None,
        ) as resp:
            if max_body:
                body = await resp.content.read(max_body + 1)
                if len(body) > max_body:
                    if not truncate:
                        raise BodyTooLarge(max_body)
                    body = body[:max_body]
            else:
                body = await resp.read()
            return Response(resp.status, resp.reason or "", resp.headers, body)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


class SyncClient:
    """An :class:`OutboundClient` on a private event loop, for code running on a thread of
    its own (the remote-write senders). Use it from one thread at a time."""

    def __init__(self, cfg: HTTPClientConfig, *, user_agent: str = USER_AGENT) -> None:
        self._loop = asyncio.new_event_loop()
        self._client = OutboundClient(cfg, user_agent=user_agent)

    def request(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        data: bytes | None = None,
        timeout_s: float = 30.0,
        max_body: int = 0,
        truncate: bool = False,
    ) -> Response:
        coro = self._client.request(
            method,
            url,
            headers=headers,
            data=data,
            timeout_s=timeout_s,
            max_body=max_body,
            truncate=truncate,
        )
        return self._loop.run_until_complete(coro)

    def close(self) -> None:
        if not self._loop.is_closed():
            self._loop.run_until_complete(self._client.close())
            self._loop.close()
