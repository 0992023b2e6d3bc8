"""The outbound HTTP client against real HTTPS servers on loopback, with a CA, server and
client certificates generated here: TLS verification and client certificates (files and
inline PEM), server_name, insecure_skip_verify, TLS versions, basic auth and bearer files,
proxies with no_proxy; and scrape and upstream remote write using it."""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import json
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from omtsdb.config.model import (
    Authorization,
    BasicAuth,
    HTTPClientConfig,
    ScrapeConfig,
    TLSConfig,
)
from omtsdb.httpclient import OutboundClient, SyncClient, proxy_for
from omtsdb.model.labels import Labels
from omtsdb.scrape.http import ScrapeClient
from omtsdb.scrape.target import Target
from tests.conftest import require

try:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID
except ImportError:  # pragma: no cover
    x509 = None  # type: ignore[assignment]


@dataclass
class PKI:
    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    other_ca: Path  # a CA that signed nothing here


def _write_key(key: Any, path: Path) -> None:
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )


def _cert(
    subject: str, issuer: Any, issuer_key: Any, key: Any, *, ca: bool, sans: list[Any]
) -> Any:
    now = datetime.datetime.now(datetime.UTC)
    b = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if sans:
        b = b.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return b.sign(issuer_key, hashes.SHA256())


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> PKI:
    require(x509 is not None, "the cryptography package is needed to make test certificates")
    d = tmp_path_factory.mktemp("pki")
    out = {}
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "omtsdb test CA")])
    ca = _cert("omtsdb test CA", ca_name, ca_key, ca_key, ca=True, sans=[])
    names = [x509.DNSName("omtsdb.test"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    for who, sans in (("server", names), ("client", [])):
        key = ec.generate_private_key(ec.SECP256R1())
        cert = _cert(who, ca_name, ca_key, key, ca=False, sans=sans)
        (d / f"{who}.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        _write_key(key, d / f"{who}.key")
        out[who] = (d / f"{who}.pem", d / f"{who}.key")
    (d / "ca.pem").write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    other_key = ec.generate_private_key(ec.SECP256R1())
    other_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "other CA")])
    other = _cert("other CA", other_name, other_key, other_key, ca=True, sans=[])
    (d / "other.pem").write_bytes(other.public_bytes(serialization.Encoding.PEM))
    return PKI(d / "ca.pem", *out["server"], *out["client"], d / "other.pem")


async def _echo(req: web.Request) -> web.Response:
    peer = req.transport.get_extra_info("peercert") if req.transport else None
    return web.json_response(
        {
            "path": req.path_qs,
            "authorization": req.headers.get("Authorization", ""),
            "user_agent": req.headers.get("User-Agent", ""),
            "client_cert": bool(peer),
            "body": (await req.read()).decode(),
        }
    )


@asynccontextmanager
async def https_server(
    pki: PKI, *, client_certs: bool = False, max_version: ssl.TLSVersion | None = None
) -> AsyncIterator[str]:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(pki.ca))
    ctx.load_cert_chain(pki.server_cert, pki.server_key)
    ctx.verify_mode = ssl.CERT_REQUIRED if client_certs else ssl.CERT_NONE
    if max_version is not None:
        ctx.maximum_version = max_version
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", _echo)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=ctx)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"https://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


async def fetch(cfg: HTTPClientConfig, url: str, **kw: Any) -> dict[str, Any]:
    client = OutboundClient(cfg)
    try:
        resp = await client.request("GET", url, **kw)
        assert resp.status == 200, resp.body
        got: dict[str, Any] = json.loads(resp.body)
        return got
    finally:
        await client.close()


def tls(pki: PKI, **kw: Any) -> HTTPClientConfig:
    return HTTPClientConfig(tls_config=TLSConfig(**kw))


def test_tls_verification_and_client_certificates(pki: PKI) -> None:
    async def main() -> None:
        async with https_server(pki, client_certs=True) as url:
            ok = tls(
                pki,
                ca_file=str(pki.ca),
                cert_file=str(pki.client_cert),
                key_file=str(pki.client_key),
            )
            got = await fetch(ok, url + "/x?a=1")
            assert got["path"] == "/x?a=1" and got["client_cert"]
            assert got["user_agent"].startswith("omtsdb/")
            # the same as inline PEM
            inline = tls(
                pki,
                ca=pki.ca.read_text(),
                cert=pki.client_cert.read_text(),
                key=pki.client_key.read_text(),
            )
            assert (await fetch(inline, url))["client_cert"]
            # no client certificate: the server refuses the handshake
            with pytest.raises(aiohttp.ClientError):
                await fetch(tls(pki, ca_file=str(pki.ca)), url)
            # system roots or another CA: the server's certificate is not trusted
            for cfg in (HTTPClientConfig(), tls(pki, ca_file=str(pki.other_ca))):
                with pytest.raises(aiohttp.ClientConnectorCertificateError):
                    await fetch(cfg, url)

    asyncio.run(main())


def test_server_name_skip_verify_and_versions(pki: PKI) -> None:
    async def main() -> None:
        async with https_server(pki, max_version=ssl.TLSVersion.TLSv1_2) as url:
            port = url.rsplit(":", 1)[1]
            by_name = f"https://localhost:{port}"  # the certificate names omtsdb.test, 127.0.0.1
            with pytest.raises(aiohttp.ClientConnectorCertificateError):
                await fetch(tls(pki, ca_file=str(pki.ca)), by_name)
            named = tls(pki, ca_file=str(pki.ca), server_name="omtsdb.test")
            assert (await fetch(named, by_name))["path"] == "/"
            assert (await fetch(tls(pki, insecure_skip_verify=True), by_name))["path"] == "/"
            await fetch(tls(pki, ca_file=str(pki.ca), min_version="TLS12"), url)
            with pytest.raises(aiohttp.ClientError):
                await fetch(tls(pki, ca_file=str(pki.ca), min_version="TLS13"), url)

    asyncio.run(main())


def test_basic_auth_and_bearer_files_are_read_per_request(pki: PKI, tmp_path: Path) -> None:
    user, pw, token = tmp_path / "user", tmp_path / "pw", tmp_path / "token"
    user.write_text("alice\n")
    pw.write_text("s3cret\n")
    token.write_text("t0ken\n")

    async def main() -> None:
        async with https_server(pki) as url:
            base = TLSConfig(ca_file=str(pki.ca))
            basic = HTTPClientConfig(
                basic_auth=BasicAuth(username_file=str(user), password_file=str(pw)),
                tls_config=base,
            )
            assert (await fetch(basic, url))["authorization"] == "Basic YWxpY2U6czNjcmV0"
            bearer = HTTPClientConfig(
                authorization=Authorization(credentials_file=str(token)), tls_config=base
            )
            client = OutboundClient(bearer)
            try:
                first = json.loads((await client.request("GET", url)).body)
                token.write_text("rotated")
                second = json.loads((await client.request("GET", url)).body)
            finally:
                await client.close()
            assert first["authorization"] == "Bearer t0ken"
            assert second["authorization"] == "Bearer rotated"

    asyncio.run(main())


def test_proxy_url_and_no_proxy() -> None:
    seen: list[str] = []

    async def proxy(req: web.Request) -> web.Response:
        seen.append(str(req.url))  # a forward proxy gets the absolute URL
        return web.Response(text="via proxy")

    async def direct(req: web.Request) -> web.Response:
        return web.Response(text="direct")

    async def main() -> None:
        runners = []
        ports = []
        for h in (proxy, direct):
            app = web.Application()
            app.router.add_route("*", "/{tail:.*}", h)
            r = web.AppRunner(app, access_log=None)
            await r.setup()
            site = web.TCPSite(r, "127.0.0.1", 0)
            await site.start()
            runners.append(r)
            ports.append(site._server.sockets[0].getsockname()[1])  # type: ignore[union-attr]
        try:
            target = f"http://127.0.0.1:{ports[1]}/metrics"
            via = HTTPClientConfig(proxy_url=f"http://127.0.0.1:{ports[0]}")
            client = OutboundClient(via)
            assert (await client.request("GET", target)).body == b"via proxy"
            await client.close()
            assert seen == [target]
            bypass = replace(via, no_proxy="10.0.0.0/8,127.0.0.0/8")
            client = OutboundClient(bypass)
            assert (await client.request("GET", target)).body == b"direct"
            await client.close()
        finally:
            for r in runners:
                await r.cleanup()

    asyncio.run(main())
    cfg = HTTPClientConfig(proxy_url="http://p:3128", no_proxy="example.com,.corp,192.168.0.0/16")
    assert proxy_for(cfg, "http://a.example.com/x") is None
    assert proxy_for(cfg, "http://x.corp/") is None
    assert proxy_for(cfg, "http://192.168.4.5:9100/") is None
    assert proxy_for(cfg, "http://example.org/") == "http://p:3128"


def test_scrape_and_upstream_remote_write_use_it_over_tls(pki: PKI) -> None:
    base = HTTPClientConfig(
        tls_config=TLSConfig(
            ca_file=str(pki.ca), cert_file=str(pki.client_cert), key_file=str(pki.client_key)
        ),
        authorization=Authorization(credentials="abc"),
    )

    async def main() -> None:
        async with https_server(pki, client_certs=True) as url:
            sc = ScrapeConfig(
                job_name="tls",
                http=base,
                scheme="https",
                fallback_scrape_protocol="PrometheusText0.0.4",
            )
            client = ScrapeClient(sc)
            target = Target(Labels(), Labels(), url + "/metrics", 15_000, 10_000, "tls")
            try:
                body, _fmt = await client.fetch(target)
            finally:
                await client.close()
                assert json.loads(body)["authorization"] == "Bearer abc"

            def send() -> dict[str, Any]:
                sync = SyncClient(base)
                try:
                    r = sync.request("POST", url + "/api/v1/write", data=b"payload")
                    return json.loads(r.body)  # type: ignore[no-any-return]
                finally:
                    sync.close()

            got = await asyncio.to_thread(send)
            assert got["body"] == "payload" and got["client_cert"]

    asyncio.run(main())
