"""Scrape targets: from a scrape config's target groups to labelled, relabelled targets.

Follows Prometheus's target population: group labels, then the config's defaults (``job``,
``__address__``, ``__scheme__``, ``__metrics_path__``, ``__scrape_interval__``,
``__scrape_timeout__``, ``__param_<name>``), then ``relabel_configs``; a target left without
``__address__`` is an error, one dropped by relabelling is kept for the targets API as dropped.
After relabelling every ``__``-prefixed label goes and ``instance`` defaults to the address.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from urllib.parse import urlencode

from omtsdb.config.filesd import TargetGroup
from omtsdb.config.model import ScrapeConfig
from omtsdb.config.relabel import relabel
from omtsdb.config.units import format_duration_ms, parse_duration_ms
from omtsdb.errors import BadDataError
from omtsdb.model.labels import Labels

ADDRESS = "__address__"
SCHEME = "__scheme__"
METRICS_PATH = "__metrics_path__"
SCRAPE_INTERVAL = "__scrape_interval__"
SCRAPE_TIMEOUT = "__scrape_timeout__"
PARAM_PREFIX = "__param_"


@dataclass(eq=False)
class Target:
    """One scrape target: final labels plus what the scraper needs."""

    labels: Labels  # after relabelling, no ``__`` labels: attached to every sample
    discovered: Labels  # before relabelling (the targets API's discoveredLabels)
    url: str
    interval_ms: int
    timeout_ms: int
    scrape_pool: str
    # filled in by the scrape loop
    health: str = "unknown"
    last_error: str = ""
    last_scrape_ms: int = 0
    last_duration_s: float = 0.0
    last_samples: int = 0

    @property
    def key(self) -> tuple[Labels, str]:
        return (self.labels, self.url)

    def offset_ms(self, interval_ms: int) -> int:
        """A stable offset within the interval so targets spread their scrapes."""
        h = hashlib.blake2b(f"{self.labels}{self.url}".encode(), digest_size=8).digest()
        return int.from_bytes(h, "big") % max(1, interval_ms)


def _duration_label(lb: Labels, name: str, default_ms: int) -> int:
    v = lb.get(name)
    if not v:
        return default_ms
    try:
        return parse_duration_ms(v)
    except Exception:
        raise BadDataError(f"error parsing {name[2:-2].replace('_', ' ')}: {v!r}") from None


def populate(
    cfg: ScrapeConfig, group: TargetGroup, address: str
) -> tuple[Target | None, Labels, str]:
    """Build one target; returns ``(target or None if dropped/invalid, discovered, error)``."""
    pairs = dict(group.labels.items())
    pairs[ADDRESS] = address
    base = {
        "job": cfg.job_name,
        SCHEME: cfg.scheme,
        METRICS_PATH: cfg.metrics_path,
        SCRAPE_INTERVAL: format_duration_ms(cfg.scrape_interval_ms),
        SCRAPE_TIMEOUT: format_duration_ms(cfg.scrape_timeout_ms),
    }
    for name, values in cfg.params:
        if values:
            base[PARAM_PREFIX + name] = values[0]
    for k, v in base.items():
        pairs.setdefault(k, v)
    discovered = Labels(pairs)
    lb = relabel(discovered, cfg.relabel_configs) if cfg.relabel_configs else discovered
    if lb is None:
        return None, discovered, ""
    addr = lb.get(ADDRESS)
    if not addr:
        return None, discovered, "no address"
    if "/" in addr:
        return None, discovered, f'invalid "__address__" label: {addr!r}'
    try:
        interval = _duration_label(lb, SCRAPE_INTERVAL, cfg.scrape_interval_ms)
        timeout = _duration_label(lb, SCRAPE_TIMEOUT, cfg.scrape_timeout_ms)
    except BadDataError as e:
        return None, discovered, str(e)
    if interval <= 0:
        return None, discovered, "scrape interval cannot be 0"
    if timeout <= 0:
        return None, discovered, "scrape timeout cannot be 0"
    if timeout > interval:
        return (
            None,
            discovered,
            (
                f"scrape timeout cannot be greater than scrape interval "
                f"({format_duration_ms(timeout)} > {format_duration_ms(interval)})"
            ),
        )
    params: dict[str, list[str]] = {k: list(v) for k, v in cfg.params}
    for k, v in lb.items():
        if k.startswith(PARAM_PREFIX):
            name = k[len(PARAM_PREFIX) :]
            params[name] = [v, *params.get(name, [])[1:]]
    path = lb.get(METRICS_PATH) or "/"
    if not path.startswith("/"):
        path = "/" + path
    query = urlencode([(k, x) for k, vs in params.items() for x in vs])
    url = f"{lb.get(SCHEME) or 'http'}://{addr}{path}" + (f"?{query}" if query else "")
    final = {k: v for k, v in lb.items() if not k.startswith("__")}
    final.setdefault("instance", addr)
    return (
        Target(Labels(final), discovered, url, interval, timeout, cfg.job_name),
        discovered,
        "",
    )


def targets_from_groups(
    cfg: ScrapeConfig, groups: list[TargetGroup]
) -> tuple[list[Target], list[Labels], list[str]]:
    """All targets of a scrape pool: ``(active, dropped discovered label sets, errors)``.
    Duplicate targets (same labels and URL) are scraped once."""
    active: dict[tuple[Labels, str], Target] = {}
    dropped: list[Labels] = []
    errors: list[str] = []
    for g in groups:
        for addr in g.targets:
            t, disc, err = populate(cfg, g, addr)
            if t is None:
                dropped.append(disc)
                if err:
                    errors.append(f"instance {addr}: {err}")
                continue
            active.setdefault(t.key, t)
    return list(active.values()), dropped, errors
