"""Child process for test_crash: ingests deterministic batches and reports each commit.

    python -m tests.tsdb.crash_writer DIR FIRST_BATCH

Prints ``<batch id>`` on stdout (flushed) only after ``commit()`` returned.
"""

from __future__ import annotations

import sys

import numpy as np

from omtsdb.model.labels import Labels
from omtsdb.model.samples import STALE_NAN
from omtsdb.tsdb.db import DB, DBOptions

SERIES = 40
PER_BATCH = 5
BASE_T = 1_700_000_000_000


def batch(i: int) -> tuple[list[Labels], np.ndarray, np.ndarray, np.ndarray]:  # type: ignore[type-arg]
    series = [
        Labels({"__name__": "crash_metric", "s": str(j), "g": str(i % 3)}) for j in range(SERIES)
    ]
    idx = np.repeat(np.arange(SERIES, dtype=np.int64), PER_BATCH)
    k = np.tile(np.arange(PER_BATCH, dtype=np.int64), SERIES)
    ts = BASE_T + (i * PER_BATCH + k) * 1000
    vs = (i * 1000 + idx * 10 + k) * 0.1
    vs[(idx + i) % 17 == 0] = STALE_NAN
    vs[(idx + i) % 19 == 0] = float("-inf")
    return series, idx, ts, vs


def main() -> None:
    path, first = sys.argv[1], int(sys.argv[2])
    db = DB.open(path, DBOptions(chunk_capacity=16, fsync=False))
    i = first
    while True:
        series, idx, ts, vs = batch(i)
        app = db.appender()
        app.append_columns(series, idx, ts, vs)
        app.commit()
        sys.stdout.write(f"{i}\n")
        sys.stdout.flush()
        i += 1


if __name__ == "__main__":
    main()
