"""The scraper's HTTP side: Prometheus's Accept header and content-type negotiation over the one
outbound client (``omtsdb.httpclient``: auth, TLS, proxies, timeouts, the body size limit), one
client per scrape pool."""

from __future__ import annotations

from omtsdb.config.model import ScrapeConfig
from omtsdb.httpclient import USER_AGENT, BodyTooLarge, OutboundClient
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
        self._client = OutboundClient(cfg.http, user_agent=USER_AGENT)

    async def close(self) -> None:
        await self._client.close()

    async def fetch(self, target: Target) -> tuple[bytes, Format]:
        cfg = self.cfg
        headers = {
            "Accept": self.accept,
            "X-Prometheus-Scrape-Timeout-Seconds": f"{target.timeout_ms / 1000:g}",
            "Accept-Encoding": "gzip" if cfg.enable_compression else "identity",
        }
        try:
            resp = await self._client.request(
                "GET",
                target.url,
                headers=headers,
                timeout_s=target.timeout_ms / 1000,
                max_body=cfg.body_size_limit,
            )
        except BodyTooLarge as e:
            raise ScrapeFailed(str(e)) from None
        if resp.status != 200:
            raise ScrapeFailed(f"server returned HTTP status {resp.status} {resp.reason}")
        fmt = content_format(resp.headers.get("Content-Type", ""), cfg.fallback_scrape_protocol)
        return resp.body, fmt
