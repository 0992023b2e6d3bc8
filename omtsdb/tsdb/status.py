"""``storage.status.TSDBStatus`` for a ``DB``: what the API's status endpoints and ``/metrics``
read, without the HTTP layer seeing the DB."""

from __future__ import annotations

from collections.abc import Mapping

from omtsdb.storage.status import HeadStatus, StorageStatus, WALStatus
from omtsdb.tsdb.db import DB


class DBStatus:
    def __init__(self, db: DB) -> None:
        self.db = db

    def head_status(self) -> HeadStatus:
        db, head = self.db, self.db.head
        return HeadStatus(
            num_series=head.num_series,
            chunk_count=head.chunk_count(),
            min_time=int(head.mint),
            max_time=int(head.maxt),
            series_created=head.num_series + head.removed_series_total,
            series_removed=head.removed_series_total,
            samples_appended=head.num_samples - db.replay_stats.samples,
        )

    def cardinality(self) -> Mapping[str, Mapping[str, int]]:
        return self.db.head.postings.cardinality()

    def wal_status(self) -> WALStatus | None:
        wal = self.db.wal
        if wal is None:
            return None
        st = wal.stats
        return WALStatus(
            replay_first_segment=st.replay_first_segment,
            replay_last_segment=st.replay_last_segment,
            current_segment=max(wal.current_segment(), 0),
            corruptions=st.corruptions_repaired,
            records=st.records,
            bytes_written=st.bytes_written,
        )

    def storage_status(self) -> StorageStatus:
        o = self.db.opts
        return StorageStatus(len(self.db.blocks), o.retention_ms, o.retention_bytes)
