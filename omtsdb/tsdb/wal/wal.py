"""Segmented write-ahead log with group commit, tail repair and checkpoints.

Layout of the WAL directory::

    00000000 00000001 ...        segments, records framed as in ``records``
    checkpoint.00000005/00000000 records of live series and recent samples from segments <= 5

``log`` writes one commit's records with a single ``write`` and returns after ``fsync``;
concurrent committers share fsyncs (group commit). On open, ``replay`` reads the newest
checkpoint then the later segments; a torn or corrupt record ends the log there: the segment is
cut back to the last good record and later segments are removed. Writing continues in a fresh
segment.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from omtsdb.tsdb.wal.records import (
    Record,
    SeriesRecord,
    encode,
    iter_records,
)

log = logging.getLogger(__name__)

U64 = npt.NDArray[np.uint64]


@dataclass(slots=True)
class WALStats:
    records: int = 0
    bytes_written: int = 0
    fsyncs: int = 0
    fsync_seconds: float = 0.0
    corruptions_repaired: int = 0
    bytes_truncated: int = 0
    segments_removed: int = 0
    replayed_records: int = 0
    # segments of the last replay as Prometheus reports them: first read, and the one writing
    # continues in (the last read + 1)
    replay_first_segment: int = 0
    replay_last_segment: int = 0


def _seg_name(n: int) -> str:
    return f"{n:08d}"


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def list_segments(d: Path) -> list[int]:
    return sorted(int(p.name) for p in d.iterdir() if p.name.isdigit() and p.is_file())


def _checkpoints(d: Path) -> list[tuple[int, Path]]:
    out = []
    for p in d.iterdir():
        if p.is_dir() and p.name.startswith("checkpoint.") and p.name[11:].isdigit():
            out.append((int(p.name[11:]), p))
    return sorted(out)


class WAL:
    def __init__(self, directory: Path, segment_size: int, fsync: bool) -> None:
        self.dir = directory
        self.segment_size = segment_size
        self.fsync_enabled = fsync
        self.stats = WALStats()
        self._wlock = threading.Lock()  # writes and segment rotation
        self._slock = threading.Lock()  # fsync
        self._fd = -1
        self._seg = -1
        self._seg_bytes = 0
        self._written = 0  # commits written
        self._synced = 0  # commits known durable
        self._replayed = False
        self.fsync_observer: Callable[[float], None] | None = None  # seconds per fsync

    @classmethod
    def open(
        cls, directory: str | Path, *, segment_size: int = 128 * 2**20, fsync: bool = True
    ) -> WAL:
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        for p in d.iterdir():  # a checkpoint that never finished
            if p.name.startswith("checkpoint.") and p.name.endswith(".tmp"):
                shutil.rmtree(p, ignore_errors=True)
        return cls(d, segment_size, fsync)

    # -- reading ----------------------------------------------------------------------------
    def replay(self) -> Iterator[Record]:
        """Yield every record: newest checkpoint first, then the segments after it. Repairs
        a bad tail on the way. Call once, before the first ``log``."""
        cps = _checkpoints(self.dir)
        start = 0
        if cps:
            n, cp = cps[-1]
            start = n + 1
            for seg in list_segments(cp):
                data = (cp / _seg_name(seg)).read_bytes()
                recs, _, err = iter_records(data)
                if err:
                    # A checkpoint is written atomically; damage here is disk corruption. Keep
                    # what decodes and go on: refusing to start would lose everything.
                    self.stats.corruptions_repaired += 1
                    log.error("WAL checkpoint %s/%s corrupt (%s); using what decodes", cp, seg, err)
                self.stats.replayed_records += len(recs)
                yield from recs
        segs = [s for s in list_segments(self.dir) if s >= start]
        self.stats.replay_first_segment = segs[0] if segs else start
        self.stats.replay_last_segment = segs[-1] + 1 if segs else start
        for i, seg in enumerate(segs):
            path = self.dir / _seg_name(seg)
            data = path.read_bytes()
            recs, good, err = iter_records(data)
            self.stats.replayed_records += len(recs)
            yield from recs
            if err is not None:
                self._repair(path, good, len(data), err, segs[i + 1 :])
                break
        self._replayed = True

    def _repair(self, path: Path, good: int, size: int, why: str, later: list[int]) -> None:
        self.stats.corruptions_repaired += 1
        self.stats.bytes_truncated += size - good
        log.warning(
            "WAL segment %s: %s at offset %d; cutting %d bytes and %d later segment(s)",
            path.name,
            why,
            good,
            size - good,
            len(later),
        )
        with open(path, "r+b") as f:
            f.truncate(good)
            f.flush()
            os.fsync(f.fileno())
        for seg in later:
            (self.dir / _seg_name(seg)).unlink(missing_ok=True)
            self.stats.segments_removed += 1
        _fsync_dir(self.dir)

    # -- writing ----------------------------------------------------------------------------
    def _open_next_segment(self) -> None:
        segs = list_segments(self.dir)
        cps = _checkpoints(self.dir)
        nxt = max([segs[-1] + 1 if segs else 0, (cps[-1][0] + 1) if cps else 0, self._seg + 1])
        if self._fd >= 0:
            if self.fsync_enabled:
                os.fsync(self._fd)
            os.close(self._fd)
        self._fd = os.open(self.dir / _seg_name(nxt), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        self._seg = nxt
        self._seg_bytes = 0
        _fsync_dir(self.dir)

    def log(self, records: Sequence[Record], sync: bool = True) -> None:
        """Write one commit's records; return once they are in the OS and (if enabled and
        ``sync``) fsynced. Thread-safe; concurrent callers share fsyncs. ``sync=False`` leaves
        the records to the next fsync (a later synced commit or the segment's rotation)."""
        if not records:
            return
        buf = b"".join(encode(r) for r in records)
        with self._wlock:
            if self._fd < 0 or (self._seg_bytes and self._seg_bytes + len(buf) > self.segment_size):
                self._open_next_segment()
            view = memoryview(buf)
            while view:
                n = os.write(self._fd, view)
                view = view[n:]
            self._seg_bytes += len(buf)
            self._written += 1
            mine = self._written
            fd = self._fd
            self.stats.records += len(records)
            self.stats.bytes_written += len(buf)
        if self.fsync_enabled and sync:
            self._sync(mine, fd)

    def _sync(self, mine: int, fd: int) -> None:
        with self._slock:
            if self._synced >= mine:
                return  # another committer's fsync covered this write
            with self._wlock:
                target = self._written
                fd = self._fd
            t0 = time.perf_counter()
            # If the segment was rotated meanwhile, rotation already fsynced it.
            with contextlib.suppress(OSError):
                os.fsync(fd)
            took = time.perf_counter() - t0
            self.stats.fsyncs += 1
            self.stats.fsync_seconds += took
            if self.fsync_observer is not None:
                self.fsync_observer(took)
            self._synced = target

    def segments(self) -> list[int]:
        return list_segments(self.dir)

    def current_segment(self) -> int:
        return self._seg

    def cut_segment(self) -> int:
        """Start a new segment; returns the number of the last complete one."""
        with self._wlock:
            prev = self._seg
            self._open_next_segment()
            return prev

    # -- checkpoints --------------------------------------------------------------------------
    def checkpoint(
        self,
        *,
        upto_segment: int,
        keep_series: Callable[[U64], npt.NDArray[np.bool_]],
        mint: int,
    ) -> None:
        """Fold segments <= ``upto_segment`` (and the previous checkpoint) into a new
        checkpoint holding series records of live series and samples at or after ``mint``,
        then delete what it replaces."""
        cps = [c for c in _checkpoints(self.dir) if c[0] <= upto_segment]
        sources: list[Path] = []
        if cps:
            cp = cps[-1][1]
            sources += [cp / _seg_name(s) for s in list_segments(cp)]
        start = cps[-1][0] + 1 if cps else 0
        sources += [
            self.dir / _seg_name(s) for s in list_segments(self.dir) if start <= s <= upto_segment
        ]
        out: list[bytes] = []
        for src in sources:
            recs, _, _ = iter_records(src.read_bytes())
            for r in recs:
                if isinstance(r, SeriesRecord):
                    keep = keep_series(r.refs)
                    if keep.any():
                        out.append(
                            encode(
                                SeriesRecord(
                                    r.refs[keep],
                                    [lb for lb, k in zip(r.labels, keep, strict=True) if k],
                                )
                            )
                        )
                else:
                    keep = keep_series(r.refs) & (r.ts >= mint)
                    if keep.any():
                        out.append(encode(r.take(keep)))
        final = self.dir / f"checkpoint.{upto_segment:08d}"
        tmp = self.dir / f"checkpoint.{upto_segment:08d}.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        with open(tmp / _seg_name(0), "wb") as f:
            f.write(b"".join(out))
            f.flush()
            os.fsync(f.fileno())
        _fsync_dir(tmp)
        if final.exists():
            shutil.rmtree(final)
        os.rename(tmp, final)
        _fsync_dir(self.dir)
        for n, p in _checkpoints(self.dir):
            if n < upto_segment:
                shutil.rmtree(p, ignore_errors=True)
        for s in list_segments(self.dir):
            if s <= upto_segment and s != self._seg:
                (self.dir / _seg_name(s)).unlink(missing_ok=True)
        _fsync_dir(self.dir)

    def size_bytes(self) -> int:
        return sum(p.stat().st_size for p in self.dir.rglob("*") if p.is_file())

    def close(self) -> None:
        with self._wlock:
            if self._fd >= 0:
                if self.fsync_enabled:
                    os.fsync(self._fd)
                os.close(self._fd)
                self._fd = -1
