"""What the API and ``/metrics`` may know about the embedded TSDB, as a narrow protocol: the
HTTP layer never sees a ``DB``. The composition root hands in ``tsdb.status.DBStatus``; a
storage without a TSDB (a remote tier) hands in none, and the status endpoints say so.

All figures are read at call time; times are milliseconds (``head_min_time`` is ``I64_MAX``
and ``head_max_time`` ``I64_MIN`` while the head is empty, as Prometheus reports them).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol, runtime_checkable


@dataclass(frozen=True, slots=True)
class HeadStatus:
    num_series: int
    chunk_count: int
    min_time: int
    max_time: int
    series_created: int
    series_removed: int
    samples_appended: int  # since start, replayed samples excluded


@dataclass(frozen=True, slots=True)
class WALStatus:
    replay_first_segment: int
    replay_last_segment: int
    current_segment: int
    corruptions: int
    records: int
    bytes_written: int


@dataclass(frozen=True, slots=True)
class StorageStatus:
    blocks_loaded: int
    retention_ms: int
    retention_bytes: int


@runtime_checkable
class TSDBStatus(Protocol):
    def head_status(self) -> HeadStatus: ...

    def cardinality(self) -> Mapping[str, Mapping[str, int]]:
        """Live head series per label name and value (``{name: {value: series}}``)."""
        ...

    def wal_status(self) -> WALStatus | None:
        """None when the TSDB keeps no WAL (memory only)."""
        ...

    def storage_status(self) -> StorageStatus: ...
