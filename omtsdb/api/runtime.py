"""Server settings that a configuration reload changes while the server runs.

One mutable :class:`Runtime` per application (``app[RUNTIME]``); handlers read its fields once
per request, a reload replaces them with :meth:`Runtime.update` (each field swap is atomic).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from aiohttp import web

from omtsdb.model.labels import Labels

# What Prometheus 3.5 reports on /api/v1/status/config for an empty configuration file.
DEFAULT_CONFIG_YAML = """\
global:
  scrape_interval: 1m
  scrape_timeout: 10s
  scrape_protocols:
  - OpenMetricsText1.0.0
  - OpenMetricsText0.0.1
  - PrometheusText1.0.0
  - PrometheusText0.0.4
  evaluation_interval: 1m
  metric_name_validation_scheme: utf8
  metric_name_escaping_scheme: allow-utf-8
runtime:
  gogc: 75
otlp:
  translation_strategy: UnderscoreEscapingWithSuffixes
"""


@dataclass
class Runtime:
    external_labels: Labels = field(default_factory=Labels)
    config_yaml: str = DEFAULT_CONFIG_YAML
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def update(
        self, *, external_labels: Labels | None = None, config_yaml: str | None = None
    ) -> None:
        """Replace what is given (a config reload); readers see the old or the new value."""
        with self._lock:
            if external_labels is not None:
                self.external_labels = external_labels
            if config_yaml is not None:
                self.config_yaml = config_yaml


RUNTIME: web.AppKey[Runtime] = web.AppKey("omtsdb_runtime", Runtime)
