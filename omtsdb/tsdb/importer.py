"""Importing historical samples straight into blocks (``omtsdb import``).

Like ``promtool tsdb create-blocks-from openmetrics``, the head and WAL are bypassed: samples
are sorted per series, split into UTC-day windows and written as one block per day (long chunks
compress best; each block gets baselines learned from the imported previous day). Blocks that
overlap existing ones are merged by the next compaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from omtsdb.errors import BadDataError
from omtsdb.model.labels import Labels
from omtsdb.model.samples import F64, I64
from omtsdb.tsdb.block.writer import write_block
from omtsdb.tsdb.codec.baseline import DAY_MS, Baseline, learn_baseline


@dataclass(slots=True)
class ImportReport:
    series: int = 0
    samples: int = 0
    blocks: int = 0
    duplicates: int = 0  # same timestamp, different value: the first one is kept
    first_error: str = ""


def import_columns(
    path: Path,
    series: list[Labels],
    series_idx: np.ndarray,
    ts: I64,
    vs: F64,
    *,
    require_metric_name: bool = True,
    fsync: bool = True,
) -> ImportReport:
    """Write the samples (``series[series_idx[i]]``, ``ts[i]``, ``vs[i]``) as blocks under
    ``path``. Invalid series stop the import before anything is written."""
    for lb in series:
        lb.validate()
        if require_metric_name and not lb.name:
            raise BadDataError(f"series {lb} has no metric name")
    rep = ImportReport()
    if ts.size == 0:
        return rep
    sidx = np.asarray(series_idx, np.int64)
    order = np.lexsort((ts, sidx))
    sidx, ts, vs = sidx[order], ts[order], vs[order]
    same = (sidx[1:] == sidx[:-1]) & (ts[1:] == ts[:-1])
    if same.any():
        bits = vs.view(np.uint64)
        conflict = same & (bits[1:] != bits[:-1])
        rep.duplicates = int(conflict.sum())
        if rep.duplicates:
            k = int(np.flatnonzero(conflict)[0])
            rep.first_error = (
                f"duplicate sample for timestamp {int(ts[k + 1])} of {series[sidx[k]]}"
            )
        keep = np.concatenate(([True], ~same))
        sidx, ts, vs = sidx[keep], ts[keep], vs[keep]
    day = ts // DAY_MS
    # one segment per (series, day): sidx is sorted, ts sorted within a series
    seg_start = np.flatnonzero(
        np.concatenate(([True], (sidx[1:] != sidx[:-1]) | (day[1:] != day[:-1])))
    )
    seg_end = np.append(seg_start[1:], ts.size)
    seg_series = sidx[seg_start]
    seg_day = day[seg_start]
    rank = np.empty(len(series), np.int64)
    rank[sorted(range(len(series)), key=lambda i: series[i].sort_key())] = np.arange(len(series))
    by_key: dict[tuple[int, int], int] = {
        (int(s), int(d)): k for k, (s, d) in enumerate(zip(seg_series, seg_day, strict=True))
    }
    rep.series = int(np.unique(sidx).size)
    rep.samples = int(ts.size)
    for d in np.unique(seg_day).tolist():
        segs = np.flatnonzero(seg_day == d)
        segs = segs[np.argsort(rank[seg_series[segs]], kind="stable")]

        def baseline(lb_idx: int, d: int = d) -> Baseline | None:
            k = by_key.get((lb_idx, d - 1))
            if k is None:
                return None
            a, b = seg_start[k], seg_end[k]
            return learn_baseline(ts[a:b], vs[a:b])

        base_of = {series[int(seg_series[k])]: int(seg_series[k]) for k in segs.tolist()}
        meta = write_block(
            path,
            (
                (
                    series[int(seg_series[k])],
                    ts[seg_start[k] : seg_end[k]],
                    vs[seg_start[k] : seg_end[k]],
                )
                for k in segs.tolist()
            ),
            min_time=int(ts[seg_start[segs]].min()),
            max_time=int(ts[seg_end[segs] - 1].max()) + 1,
            origin="import",
            baselines=lambda lb, m=base_of: baseline(m[lb]),  # type: ignore[misc]
            fsync=fsync,
        )
        rep.blocks += meta is not None
    return rep
