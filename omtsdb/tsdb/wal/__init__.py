"""Write-ahead log: segmented, checksummed, array-shaped records (see docs/format/wal.md)."""

from omtsdb.tsdb.wal.records import Record, SamplesRecord, SeriesRecord
from omtsdb.tsdb.wal.wal import WAL, WALStats

__all__ = ["WAL", "Record", "SamplesRecord", "SeriesRecord", "WALStats"]
