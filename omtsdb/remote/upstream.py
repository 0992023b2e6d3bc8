"""Remote write to an upstream (``remote_write`` in the configuration).

Every committed batch is offered to each queue as arrays (head refs, timestamps, values): the
commit path pays one ``put`` per queue. A sender thread per queue resolves refs to labels (with
``write_relabel_configs`` and the external labels applied, cached per ref), cuts batches of
``max_samples_per_send`` or whatever arrived within ``batch_send_deadline``, and posts them as
snappy-compressed ``prometheus.WriteRequest`` (remote write 1.0) through the outbound HTTP client
(``omtsdb.httpclient``: TLS, auth, proxies as configured). 5xx, 429 and network errors
are retried with exponential backoff between ``min_backoff`` and ``max_backoff``; other 4xx
answers drop the batch, as Prometheus does. A full queue drops the oldest batch and counts it,
so a dead upstream never blocks ingestion.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import aiohttp
import numpy as np

from omtsdb.config.model import RemoteWriteConfig
from omtsdb.config.relabel import relabel
from omtsdb.httpclient import SyncClient
from omtsdb.model.labels import Labels
from omtsdb.model.samples import F64, I64
from omtsdb.obs.metrics import (
    UPSTREAM_DROPPED,
    UPSTREAM_FAILED,
    UPSTREAM_RETRIED,
    UPSTREAM_SAMPLES,
)
from omtsdb.remote.build import write_request_v1, write_request_v2
from omtsdb.remote.wire import snappy_encode
from omtsdb.storage.metadata import METRIC_TYPES

log = logging.getLogger(__name__)

LabelsOf = Callable[[int], "Labels | None"]
# family -> (type, help, unit), e.g. from the metadata store that scrapes fill
MetadataSource = Callable[[], dict[str, tuple[str, str, str]]]
RW2 = "io.prometheus.write.v2.Request"
# type name -> MetricMetadata.MetricType / Metadata.MetricType number (1.0 and 2.0 agree)
TYPE_NUMBERS = {name: i for i, name in enumerate(METRIC_TYPES)}


@dataclass(slots=True)
class QueueStats:
    samples_sent: int = 0
    samples_dropped: int = 0  # relabelled away or queue overflow
    samples_failed: int = 0  # refused by the upstream (4xx)
    samples_retried: int = 0
    requests: int = 0
    last_error: str = ""


class WriteQueue:
    def __init__(
        self,
        cfg: RemoteWriteConfig,
        labels_of: LabelsOf,
        external: Labels | None = None,
        metadata: MetadataSource | None = None,
    ) -> None:
        self.cfg = cfg
        self.labels_of = labels_of
        self.external = external or Labels()
        self.metadata = metadata if cfg.send_metadata else None
        self.v2 = cfg.protobuf_message == RW2
        self.stats = QueueStats()
        rn = (cfg.name or cfg.url, cfg.url)
        self._m_sent = UPSTREAM_SAMPLES.labels(*rn)
        self._m_failed = UPSTREAM_FAILED.labels(*rn)
        self._m_retried = UPSTREAM_RETRIED.labels(*rn)
        self._m_dropped = UPSTREAM_DROPPED.labels(*rn)
        qc = cfg.queue_config
        self._q: queue.Queue[tuple[I64, I64, F64] | None] = queue.Queue(
            maxsize=max(1, qc.capacity // 100)
        )
        self._labels: dict[int, Labels | None] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name=f"remote-write-{cfg.name or cfg.url}", daemon=True
        )
        self._thread.start()

    # -- producer side -----------------------------------------------------------------------

    def offer(self, refs: I64, ts: I64, vs: F64) -> None:
        item = (refs, ts, vs)
        while True:
            try:
                self._q.put_nowait(item)
                return
            except queue.Full:
                try:
                    old = self._q.get_nowait()
                    if old is not None:
                        self.stats.samples_dropped += int(old[0].size)
                        self._m_dropped.inc(int(old[0].size))
                except queue.Empty:
                    pass

    def close(self, timeout: float = 5.0) -> None:
        """Stop after sending what is queued (bounded by ``timeout``)."""
        self._stop.set()
        with contextlib.suppress(queue.Full):
            self._q.put(None, timeout=timeout)
        self._thread.join(timeout)

    # -- sender side -------------------------------------------------------------------------

    def _resolve(self, ref: int) -> Labels | None:
        if ref in self._labels:
            return self._labels[ref]
        lb = self.labels_of(ref)
        if lb is not None:
            if self.external:
                lb = lb.with_pairs((n, v) for n, v in self.external.items() if n not in lb)
            if self.cfg.write_relabel_configs:
                lb = relabel(lb, self.cfg.write_relabel_configs)
        if len(self._labels) > 1_000_000:
            self._labels.clear()
        self._labels[ref] = lb
        return lb

    def _run(self) -> None:
        self._http = SyncClient(self.cfg.http)  # on this thread: its event loop is this thread's
        try:
            self._loop()
        finally:
            self._http.close()

    def _loop(self) -> None:
        qc = self.cfg.queue_config
        parts: list[tuple[I64, I64, F64]] = []
        pending = 0
        deadline = time.monotonic() + qc.batch_send_deadline_ms / 1000
        next_metadata = time.monotonic() + min(5.0, self.cfg.metadata_send_interval_ms / 1000)
        closing = False
        while True:
            if self.metadata is not None and not self.v2 and time.monotonic() >= next_metadata:
                self._send_metadata()
                next_metadata = time.monotonic() + self.cfg.metadata_send_interval_ms / 1000
            timeout = max(0.0, min(deadline, next_metadata) - time.monotonic())
            try:
                item = self._q.get(timeout=timeout) if not closing else self._q.get_nowait()
            except queue.Empty:
                item = None
                if closing:
                    self._flush(parts)
                    return
            else:
                if item is None:
                    closing = True
                else:
                    parts.append(item)
                    pending += int(item[0].size)
            if (
                pending >= qc.max_samples_per_send
                or time.monotonic() >= deadline
                or (closing and self._q.empty())
            ):
                self._flush(parts)
                parts, pending = [], 0
                deadline = time.monotonic() + qc.batch_send_deadline_ms / 1000
                if closing and self._q.empty():
                    return

    def _flush(self, parts: list[tuple[I64, I64, F64]]) -> None:
        if not parts:
            return
        refs = np.concatenate([p[0] for p in parts])
        ts = np.concatenate([p[1] for p in parts])
        vs = np.concatenate([p[2] for p in parts])
        step = max(1, self.cfg.queue_config.max_samples_per_send)
        for a in range(0, refs.size, step):
            self._send_slice(refs[a : a + step], ts[a : a + step], vs[a : a + step])

    def _send_slice(self, refs: I64, ts: I64, vs: F64) -> None:
        order = np.lexsort((ts, refs))  # per series in time order
        refs, ts, vs = refs[order], ts[order], vs[order]
        bounds = np.flatnonzero(np.diff(refs)) + 1
        starts = [0, *bounds.tolist()]
        ends = [*bounds.tolist(), int(refs.size)]
        series = []
        n = 0
        for a, b in zip(starts, ends, strict=True):
            lb = self._resolve(int(refs[a]))
            if lb is None:
                self.stats.samples_dropped += b - a
                self._m_dropped.inc(b - a)
                continue
            series.append(
                (lb.to_dict(), list(zip(ts[a:b].tolist(), vs[a:b].tolist(), strict=True)))
            )
            n += b - a
        if not series:
            return
        if self.v2:
            md = self.metadata() if self.metadata is not None else {}
            typed = {k: (TYPE_NUMBERS.get(t, 0), h, u) for k, (t, h, u) in md.items()}
            body = snappy_encode(write_request_v2(series, typed))
        else:
            body = snappy_encode(write_request_v1(series))
        self._post(body, n)

    def _send_metadata(self) -> None:
        """Remote write 1.0 carries metadata in requests of its own, re-sent every
        ``metadata_send_interval`` (2.0 attaches it to the series)."""
        assert self.metadata is not None
        items = [
            (name, TYPE_NUMBERS.get(t, 0), h, u) for name, (t, h, u) in self.metadata().items()
        ]
        step = max(1, self.cfg.metadata_max_samples_per_send)
        for a in range(0, len(items), step):
            self._post(snappy_encode(write_request_v1((), items[a : a + step])), 0)

    def _post(self, body: bytes, n: int) -> None:
        qc = self.cfg.queue_config
        backoff = qc.min_backoff_ms / 1000
        headers = {
            "Content-Encoding": "snappy",
            "Content-Type": f"application/x-protobuf;proto={RW2}"
            if self.v2
            else "application/x-protobuf",
            "X-Prometheus-Remote-Write-Version": "2.0.0" if self.v2 else "0.1.0",
            **dict(self.cfg.headers),
        }
        while True:
            self.stats.requests += 1
            try:
                resp = self._http.request(
                    "POST",
                    self.cfg.url,
                    data=body,
                    headers=headers,
                    timeout_s=self.cfg.remote_timeout_ms / 1000,
                    max_body=512,
                    truncate=True,
                )
                if resp.status < 300:
                    self.stats.samples_sent += n
                    self._m_sent.inc(n)
                    return
                msg = resp.body[:512].decode("utf-8", "replace").strip()
                self.stats.last_error = f"server returned HTTP status {resp.status}: {msg}"
                if resp.status < 500 and resp.status != 429:
                    self.stats.samples_failed += n
                    self._m_failed.inc(n)
                    log.warning("remote write to %s refused: %s", self.cfg.url, msg)
                    return
            except (aiohttp.ClientError, TimeoutError, OSError) as e:
                self.stats.last_error = str(e) or type(e).__name__
            if self._stop.is_set() and backoff >= qc.max_backoff_ms / 1000:
                self.stats.samples_failed += n  # shutting down: give up after one long wait
                self._m_failed.inc(n)
                return
            self.stats.samples_retried += n
            self._m_retried.inc(n)
            time.sleep(backoff)
            backoff = min(backoff * 2, qc.max_backoff_ms / 1000)


class RemoteWriteManager:
    """All ``remote_write`` queues; ``apply`` swaps them on reload."""

    def __init__(self, labels_of: LabelsOf, metadata: MetadataSource | None = None) -> None:
        self.labels_of = labels_of
        self.metadata = metadata
        self.queues: dict[tuple[RemoteWriteConfig, Labels], WriteQueue] = {}
        self._lock = threading.Lock()

    def apply(self, cfgs: tuple[RemoteWriteConfig, ...], external: Labels) -> None:
        with self._lock:
            old = self.queues
            new: dict[tuple[RemoteWriteConfig, Labels], WriteQueue] = {}
            for c in cfgs:
                key = (c, external)
                kept = old.pop(key, None)
                new[key] = (
                    kept
                    if kept is not None
                    else WriteQueue(c, self.labels_of, external, self.metadata)
                )
            self.queues = new
        for q in old.values():
            q.close()

    def on_commit(self, refs: I64, ts: I64, vs: F64) -> None:
        for q in list(self.queues.values()):
            q.offer(refs, ts, vs)

    def close(self) -> None:
        with self._lock:
            old, self.queues = self.queues, {}
        for q in old.values():
            q.close()
