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
    # (ulid, min time, max time, series, samples, bytes, level, origin) per block
    blocks: list[tuple[str, int, int, int, int, int, int, str]] = field(default_factory=list)
    head_samples: int = 0
    wal_bytes: int = 0

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
    for b in db.blocks:
        m = b.meta
        a.blocks.append(
            (
                m.ulid,
                m.min_time,
                m.max_time,
                m.num_series,
                m.num_samples,
                b.size_bytes(),
                m.level,
                m.origin,
            )
        )
    a.head_samples = db.head.num_samples
    if db.wal is not None:
        a.wal_bytes = db.wal.size_bytes()
    return a


def render(a: Analysis, limit: int = 20) -> str:
    lines = [
        f"Series: {a.series}",
        f"Samples: {a.samples}",
        f"Min time: {a.min_time}",
        f"Max time: {a.max_time}",
        f"Bytes on disk: {a.bytes_on_disk}",
        f"Bytes per sample: {a.bytes_per_sample:.3f}",
        f"Head samples: {a.head_samples} (WAL {a.wal_bytes} bytes)",
        "",
        f"Blocks: {len(a.blocks)}",
    ]
    if a.blocks:
        lines.append(
            "ULID                       MIN TIME       MAX TIME       SERIES  "
            "SAMPLES     BYTES/SAMPLE  LEVEL  ORIGIN"
        )
        for ulid, mint, maxt, ns, nsamp, nbytes, level, origin in a.blocks:
            bps = nbytes / nsamp if nsamp else 0.0
            lines.append(
                f"{ulid} {mint:<14d} {maxt:<14d} {ns:<7d} {nsamp:<11d} {bps:<13.3f} "
                f"{level:<6d} {origin}"
            )
    lines += [
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
