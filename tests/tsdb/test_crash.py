"""SIGKILL a writer at random moments; every batch it reported committed must survive."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from omtsdb.model import Labels, Matcher
from omtsdb.tsdb.db import DB, DBOptions
from tests.tsdb.crash_writer import batch

pytestmark = pytest.mark.slow  # a real peer or many trials: seconds per test

ROOT = Path(__file__).resolve().parents[2]
TRIALS = 20


def _run_child(path: Path, first: int, kill_after: float) -> list[int]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.tsdb.crash_writer", str(path), str(first)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    try:
        # Wait for the first commit so that every trial kills a writer mid-ingest.
        assert proc.stdout is not None
        first_line = proc.stdout.readline()
        assert first_line, proc.stderr.read().decode() if proc.stderr else "child died"
        time.sleep(kill_after)
        proc.send_signal(signal.SIGKILL)
        out, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    lines = (first_line + out).decode().split()
    return [int(x) for x in lines]


def _check(path: Path, committed: list[int]) -> int:
    """Every committed batch is present bit-exactly; returns the next batch id to write."""
    with DB.open(path, DBOptions(chunk_capacity=16, fsync=False)) as db:
        got = {
            s.labels: s
            for s in db.querier(0, 2**62).select([Matcher.eq("__name__", "crash_metric")], 0, 2**62)
        }
        for i in committed:
            series, idx, ts, vs = batch(i)
            for j, lb in enumerate(series):
                s = got.get(lb)
                assert s is not None, f"batch {i}: series {lb} lost"
                sel = idx == j
                pos = np.searchsorted(s.ts, ts[sel])
                assert np.all(pos < s.ts.size), f"batch {i}: samples lost"
                assert s.ts[pos].tolist() == ts[sel].tolist(), f"batch {i}: samples lost"
                assert s.vs[pos].view(np.uint64).tolist() == vs[sel].view(np.uint64).tolist()
        newest = max((int(s.ts[-1]) for s in got.values()), default=0)
    # Batches may have landed after the last report; continue past everything stored.
    from tests.tsdb.crash_writer import BASE_T, PER_BATCH

    return max((newest - BASE_T) // 1000 // PER_BATCH + 1, max(committed, default=-1) + 1)


def test_sigkill_loses_no_committed_batch(tmp_path: Path) -> None:
    rnd = random.Random(42)
    path = tmp_path / "data"
    nxt = 0
    all_committed: list[int] = []
    for _ in range(TRIALS):
        committed = _run_child(path, nxt, rnd.uniform(0.0, 0.4))
        assert committed and committed[0] == nxt
        all_committed += committed
        nxt = _check(path, all_committed[-50:])
    # and the whole history once more at the end
    _check(path, all_committed)
    assert len(all_committed) >= TRIALS


def test_labels_used_by_child_are_valid() -> None:
    series, *_ = batch(0)
    for lb in series:
        assert isinstance(lb, Labels)
        lb.validate()
