"""Metric metadata (type, help, unit per metric family): filled by scrapes and the ingestion
endpoints, read by ``/api/v1/metadata`` (Prometheus's ``limit``/``limit_per_metric``/``metric``)
and by remote write to upstreams. It lives beside the storage contract so that scrape, remote
and the API share it without depending on each other; the composition root makes the one
instance."""

from __future__ import annotations

import threading
from dataclasses import dataclass

# prometheus.MetricMetadata.MetricType / io.prometheus.write.v2.Metadata.MetricType
METRIC_TYPES = (
    "unknown",
    "counter",
    "gauge",
    "histogram",
    "gaugehistogram",
    "summary",
    "info",
    "stateset",
)


@dataclass(frozen=True, slots=True)
class Metadata:
    type: str
    help: str
    unit: str


class MetadataStore:
    """Distinct metadata per metric family, in arrival order; at most ``max_per_metric``
    entries per family (the newest replace the oldest) and ``max_metrics`` families."""

    def __init__(self, max_per_metric: int = 10, max_metrics: int = 100_000) -> None:
        self._by_name: dict[str, dict[Metadata, None]] = {}
        self._lock = threading.Lock()
        self.max_per_metric = max_per_metric
        self.max_metrics = max_metrics

    def add(self, family: str, type_: str, help_: str, unit: str) -> None:
        if not family:
            return
        md = Metadata(type_ or "unknown", help_, unit)
        with self._lock:
            entries = self._by_name.get(family)
            if entries is None:
                if len(self._by_name) >= self.max_metrics:
                    return
                self._by_name[family] = {md: None}
                return
            if md in entries:
                return
            entries[md] = None
            while len(entries) > self.max_per_metric:
                del entries[next(iter(entries))]

    def latest(self) -> dict[str, tuple[str, str, str]]:
        """The newest (type, help, unit) of every family (what remote write sends upstream)."""
        with self._lock:
            out = {}
            for name, entries in self._by_name.items():
                md = next(reversed(entries))
                out[name] = (md.type, md.help, md.unit)
            return out

    def __len__(self) -> int:
        return len(self._by_name)

    def query(
        self, limit: int = -1, limit_per_metric: int = -1, metric: str = ""
    ) -> dict[str, list[dict[str, str]]]:
        """As Prometheus's ``/api/v1/metadata``: ``limit`` metric families (negative: all; 0:
        none), ``limit_per_metric`` entries each (<= 0: all), only ``metric`` when given."""
        with self._lock:
            if metric:
                items = [(metric, self._by_name[metric])] if metric in self._by_name else []
            else:
                items = list(self._by_name.items())
            out: dict[str, list[dict[str, str]]] = {}
            for name, entries in items:
                if limit >= 0 and len(out) >= limit:
                    break
                mds = list(entries)
                if limit_per_metric > 0:
                    mds = mds[:limit_per_metric]
                out[name] = [{"type": m.type, "help": m.help, "unit": m.unit} for m in mds]
        return out
