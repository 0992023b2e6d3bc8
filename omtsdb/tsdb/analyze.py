"""``omtsdb tsdb analyze``: what a data directory holds and what it costs."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from omtsdb.model.labels import METRIC_NAME
from omtsdb.tsdb.db import DB


@dataclass(slots=True)
class Analysis:
    series: int = 0
    samples: int = 0
    min_time: int | None = None
    max_time: int | None = None
    bytes_on_disk: int = 0
    series_by_metric: Counter[str] = field(default_factory=Counter)
    values_by_label: dict[str, set[str]] = field(default_factory=dict)
    series_by_label_pair: Counter[tuple[str, str]] = field(default_factory=Counter)

    @property
    def bytes_per_sample(self) -> float:
        return self.bytes_on_disk / self.samples if self.samples else 0.0


def dir_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def analyze(db: DB) -> Analysis:
    a = Analysis()
    for s in db.iter_series():
        a.series += 1
        a.samples += len(s)
        if len(s):
            t0, t1 = int(s.ts[0]), int(s.ts[-1])
            a.min_time = t0 if a.min_time is None else min(a.min_time, t0)
            a.max_time = t1 if a.max_time is None else max(a.max_time, t1)
        a.series_by_metric[s.labels.get(METRIC_NAME)] += 1
        for n, v in s.labels:
            a.values_by_label.setdefault(n, set()).add(v)
            a.series_by_label_pair[(n, v)] += 1
    if db.path is not None:
        a.bytes_on_disk = dir_size(db.path)
    return a


def render(a: Analysis, limit: int = 20) -> str:
    lines = [
        f"Series: {a.series}",
        f"Samples: {a.samples}",
        f"Min time: {a.min_time}",
        f"Max time: {a.max_time}",
        f"Bytes on disk: {a.bytes_on_disk}",
        f"Bytes per sample: {a.bytes_per_sample:.3f}",
        "",
        "Highest cardinality metric names:",
    ]
    lines += [f"{n} {m}" for m, n in a.series_by_metric.most_common(limit)]
    lines += ["", "Highest cardinality labels (distinct values):"]
    by_card = sorted(a.values_by_label.items(), key=lambda kv: (-len(kv[1]), kv[0]))
    lines += [f"{len(vals)} {name}" for name, vals in by_card[:limit]]
    lines += ["", "Most common label pairs (series):"]
    lines += [f"{n} {k}={v}" for (k, v), n in a.series_by_label_pair.most_common(limit)]
    return "\n".join(lines)
