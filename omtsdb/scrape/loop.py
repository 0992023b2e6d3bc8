"""One scrape loop per target: fetch, parse, label, limit, append, mark staleness, report.

The loop runs on the event loop for the HTTP part; parsing and appending (CPU work) run in a
thread of the scrape pool's executor. Each scrape is one appender batch: the samples, the
staleness markers of series that disappeared since the previous scrape, and the five report
series (``up``, ``scrape_duration_seconds``, ``scrape_samples_scraped``,
``scrape_samples_post_metric_relabeling``, ``scrape_series_added``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
import time
from collections.abc import Callable
from collections.abc import Set as AbstractSet
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Protocol

import aiohttp
import numpy as np

from omtsdb.config.model import ScrapeConfig
from omtsdb.config.relabel import relabel
from omtsdb.errors import OmtsdbError
from omtsdb.model.exposition import NO_TS, Exposition, Format, parse
from omtsdb.model.labels import METRIC_NAME, Labels
from omtsdb.model.samples import STALE_NAN
from omtsdb.obs.metrics import SCRAPE_SAMPLES, SCRAPES
from omtsdb.scrape.fastparse import Skeleton, reparse, skeleton_of
from omtsdb.scrape.http import ScrapeClient, ScrapeFailed
from omtsdb.scrape.target import Target
from omtsdb.storage.metadata import MetadataStore
from omtsdb.tsdb.appender import AppendReport

log = logging.getLogger(__name__)

REPORT_NAMES = (
    "up",
    "scrape_duration_seconds",
    "scrape_samples_scraped",
    "scrape_samples_post_metric_relabeling",
    "scrape_series_added",
)


class AppendSink(Protocol):
    """Where scraped samples go (``omtsdb.tsdb.db.DB`` satisfies it)."""

    def appender(self) -> _Appender: ...


class _Appender(Protocol):
    def append_columns(
        self, series: list[Labels], idx: np.ndarray, ts: np.ndarray, vs: np.ndarray
    ) -> AppendReport: ...
    def commit(self, sync: bool = True) -> None: ...


class LimitError(OmtsdbError):
    pass


@dataclass(slots=True)
class ScrapeResult:
    scraped: int = 0
    post_relabel: int = 0
    added: int = 0
    error: str = ""


def merge_target_labels(series: Labels, target: Labels, honor: bool) -> Labels:
    """Attach the target's labels to a scraped series as Prometheus does: with ``honor_labels``
    the series keeps its own values; otherwise a clashing scraped label is renamed to
    ``exported_<name>`` (prefixed again while that name is taken)."""
    d = dict(series.items())
    for name, value in target.items():
        if name in d:
            if honor:
                continue
            old = d.pop(name)
            exported = "exported_" + name
            while exported in d:
                exported = "exported_" + exported
            d[exported] = old
        d[name] = value
    return Labels(d)


def _dial_error(e: aiohttp.ClientConnectorError) -> str:
    """A connection failure worded as Go's net package words it (what Prometheus shows)."""
    addr = f"{e.host}:{e.port}"
    if isinstance(e.os_error, ConnectionRefusedError):
        return f"dial tcp {addr}: connect: connection refused"
    if isinstance(e, aiohttp.ClientConnectorDNSError) or "Name or service" in str(e.os_error):
        return f"dial tcp: lookup {e.host}: no such host"
    return f"dial tcp {addr}: {e.os_error.strerror or e.os_error}"


@dataclass(frozen=True, slots=True)
class _Prepared:
    series: list[Labels]  # the parsed page's series list this was computed for (by identity)
    kept: list[Labels]  # stored labels of the series kept by metric relabeling
    idx: np.ndarray  # per kept sample, its index into ``kept``
    sample_mask: np.ndarray | None  # which samples are kept (None: all)
    all_series: frozenset[Labels]
    label_error: str  # a label limit the page breaks ("" when none)


class ScrapeLoop:
    def __init__(
        self,
        target: Target,
        cfg: ScrapeConfig,
        client: ScrapeClient,
        sink: AppendSink,
        executor: Executor,
        metadata: MetadataStore | None = None,
        now_ms: Callable[[], int] = lambda: int(time.time() * 1000),
    ) -> None:
        self.target = target
        self.cfg = cfg
        self.client = client
        self.sink = sink
        self.executor = executor
        self.metadata = metadata
        self.now_ms = now_ms
        self._known: dict[str, Labels] = {}  # series text -> parsed labels
        self._skeleton: Skeleton | None = None  # the last text page without its values
        self._prepared: _Prepared | None = None
        self._cache: dict[Labels, Labels | None] = {}  # scraped series -> stored (None: dropped)
        # series written (without explicit timestamps) by the last scrape
        self.previous: AbstractSet[Labels] = frozenset()
        self._task: asyncio.Task[None] | None = None
        self._report_labels = tuple(target.labels.set(METRIC_NAME, n) for n in REPORT_NAMES)

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self, stale: bool = True) -> None:
        """Stop scraping; with ``stale`` mark every series of the last scrape and the report
        series stale, so queries stop returning them at once."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if stale:
            now = self.now_ms()
            stale_series = [*self.previous, *self._report_labels]
            self.previous = frozenset()
            await asyncio.get_running_loop().run_in_executor(
                self.executor, self._append_stale, stale_series, now
            )

    async def _run(self) -> None:
        interval = self.target.interval_ms
        offset = self.target.offset_ms(interval)
        now = self.now_ms()
        next_ms = now - now % interval + offset
        if next_ms < now:
            next_ms += interval
        while True:
            await asyncio.sleep(max(0.0, (next_ms - self.now_ms()) / 1000))
            await self.scrape_once(next_ms if abs(self.now_ms() - next_ms) < 1000 else None)
            next_ms += interval
            now = self.now_ms()
            if next_ms <= now:  # fell behind (slow target or paused process): skip ticks
                next_ms += ((now - next_ms) // interval + 1) * interval

    # -- one scrape --------------------------------------------------------------------------

    async def scrape_once(self, at_ms: int | None = None) -> ScrapeResult:
        start_ms = self.now_ms() if at_ms is None else at_ms
        t0 = time.perf_counter()
        body: bytes = b""
        fmt: Format | None = None
        err = ""
        try:
            body, fmt = await self.client.fetch(self.target)
        except ScrapeFailed as e:
            err = str(e)
        except TimeoutError:
            err = f'Get "{self.target.url}": context deadline exceeded'
        except aiohttp.ClientConnectorError as e:
            err = f'Get "{self.target.url}": {_dial_error(e)}'
        except (aiohttp.ClientError, OSError) as e:
            err = f'Get "{self.target.url}": {e or type(e).__name__}'
        loop = asyncio.get_running_loop()
        res: ScrapeResult = await loop.run_in_executor(
            self.executor, self._process, body, fmt, err, start_ms, t0
        )
        t = self.target
        t.health = "down" if res.error else "up"
        SCRAPES.labels(t.scrape_pool, t.health).inc()
        if res.post_relabel:
            SCRAPE_SAMPLES.labels(t.scrape_pool).inc(res.post_relabel)
        t.last_error = res.error
        t.last_scrape_ms = start_ms
        t.last_duration_s = time.perf_counter() - t0
        t.last_samples = res.scraped
        if res.error:
            log.debug("scrape of %s failed: %s", t.url, res.error)
        return res

    def _stored(self, series: Labels) -> Labels | None:
        lb = merge_target_labels(series, self.target.labels, self.cfg.honor_labels)
        if self.cfg.metric_relabel_configs:
            out = relabel(lb, self.cfg.metric_relabel_configs)
            if out is None or not out.name:
                return None
            lb = out
        # interned strings: the head keeps this very object, so later look-ups match by
        # identity
        return Labels.from_flat(tuple(sys.intern(s) for s in lb.flat))

    def _check_labels(self, lb: Labels) -> None:
        c = self.cfg
        if c.label_limit and len(lb) > c.label_limit:
            raise LimitError(
                f"label_limit exceeded (metric: {lb.name}, number of labels: {len(lb)}, "
                f"limit: {c.label_limit})"
            )
        for n, v in lb.items():
            if c.label_name_length_limit and len(n) > c.label_name_length_limit:
                raise LimitError(
                    f"label_name_length_limit exceeded (metric: {lb.name}, label name: {n}, "
                    f"length: {len(n)}, limit: {c.label_name_length_limit})"
                )
            if c.label_value_length_limit and len(v) > c.label_value_length_limit:
                raise LimitError(
                    f"label_value_length_limit exceeded (metric: {lb.name}, label name: {n}, "
                    f"value: {v!r}, length: {len(v)}, limit: {c.label_value_length_limit})"
                )

    def _process(
        self, body: bytes, fmt: Format | None, err: str, start_ms: int, t0: float
    ) -> ScrapeResult:
        res = ScrapeResult(error=err)
        series: list[Labels] = []
        idx = np.empty(0, np.int64)
        ts = np.empty(0, np.int64)
        vs = np.empty(0, np.float64)
        current: AbstractSet[Labels] = frozenset()
        if not err:
            try:
                series, idx, ts, vs, current = self._samples(body, fmt, start_ms, res)
            except OmtsdbError as e:
                res.error = str(e)
        if res.error:
            series, idx, ts, vs, current = [], idx[:0], ts[:0], vs[:0], frozenset()
            res.scraped = res.post_relabel = res.added = 0
        if current is self.previous:  # the same page shape as last time
            res.added, gone = 0, []
        else:
            res.added = len(current - self.previous) if not res.error else 0
            gone = [lb for lb in self.previous if lb not in current]
        self.previous = current
        # staleness markers and the report series join the same batch
        n = len(series)
        extra = [*gone, *self._report_labels]
        duration = time.perf_counter() - t0
        report = [
            0.0 if res.error else 1.0,
            duration,
            float(res.scraped),
            float(res.post_relabel),
            float(res.added),
        ]
        all_series = series + extra
        all_idx = np.concatenate((idx, np.arange(n, n + len(extra), dtype=np.int64)))
        all_ts = np.concatenate((ts, np.full(len(extra), start_ms, np.int64)))
        all_vs = np.concatenate((vs, np.full(len(gone), STALE_NAN), np.array(report)))
        app = self.sink.appender()
        rep = app.append_columns(all_series, all_idx, all_ts, all_vs)
        app.commit(sync=False)  # as Prometheus: scrapes are not fsynced one by one
        if rep.rejected and not res.error:
            log.debug(
                "scrape of %s: %d samples refused: %s",
                self.target.url,
                rep.rejected,
                rep.first_error,
            )
        return res

    def _samples(
        self, body: bytes, fmt: Format | None, start_ms: int, res: ScrapeResult
    ) -> tuple[list[Labels], np.ndarray, np.ndarray, np.ndarray, AbstractSet[Labels]]:
        e = reparse(body, self._skeleton) if fmt == "text" and self._skeleton else None
        if e is None:  # the page changed shape (or is the first): the full parser
            if len(self._known) > 200_000:
                self._known.clear()
            e = parse(body, fmt, known_series=self._known)
            self._skeleton = skeleton_of(body, e) if fmt == "text" else None
            if self.metadata is not None:
                for fam, md in e.metadata.items():
                    self.metadata.add(fam, md.type, md.help, md.unit)
        res.scraped = len(e)
        prep = self._prepared
        if prep is None or prep.series is not e.series:
            prep = self._prepared = self._prepare(e)
        idx, ts, vs = prep.idx, e.ts, e.vs
        if prep.sample_mask is not None:
            ts, vs = ts[prep.sample_mask], vs[prep.sample_mask]
        res.post_relabel = int(idx.size)
        if self.cfg.sample_limit and res.post_relabel > self.cfg.sample_limit:
            raise LimitError("sample limit exceeded")
        if prep.label_error:
            raise LimitError(prep.label_error)
        no_ts = ts == NO_TS
        if not self.cfg.honor_timestamps:
            ts = np.full(ts.shape, start_ms, np.int64)
            no_ts = np.ones(ts.shape, np.bool_)
        elif no_ts.all():
            ts = np.full(ts.shape, start_ms, np.int64)
        elif no_ts.any():
            ts = np.where(no_ts, start_ms, ts)
        # staleness tracks series whose samples carry the scrape's time (or all, if asked)
        current: AbstractSet[Labels] = prep.all_series
        if not (self.cfg.track_timestamps_staleness or no_ts.all()):
            current = {prep.kept[i] for i in np.unique(idx[no_ts]).tolist()}
        return prep.kept, idx, ts, vs, current

    def _prepare(self, e: Exposition) -> _Prepared:
        """What a page's series list turns into (stored labels, sample selection), computed
        once per distinct page shape."""
        cache = self._cache
        stored: list[Labels | None] = []
        for s in e.series:
            lb = cache.get(s, s)  # sentinel: s itself is never a cached value
            if lb is s:
                lb = self._stored(s)
                if len(cache) > 200_000:
                    cache.clear()
                cache[s] = lb
            stored.append(lb)
        keep_series = np.fromiter((x is not None for x in stored), np.bool_, len(stored))
        idx = e.series_idx
        mask = None
        if not keep_series.all():
            mask = keep_series[idx]
            idx = idx[mask]
        kept: list[Labels] = [x for x in stored if x is not None]
        remap = np.cumsum(keep_series, dtype=np.int64) - 1
        err = ""
        if (
            self.cfg.label_limit
            or self.cfg.label_name_length_limit
            or (self.cfg.label_value_length_limit)
        ):
            try:
                for lb in kept:
                    self._check_labels(lb)
            except LimitError as ex:
                err = str(ex)
        return _Prepared(e.series, kept, remap[idx], mask, frozenset(kept), err)

    def _append_stale(self, series: list[Labels], at_ms: int) -> None:
        if not series:
            return
        app = self.sink.appender()
        app.append_columns(
            series,
            np.arange(len(series), dtype=np.int64),
            np.full(len(series), at_ms, np.int64),
            np.full(len(series), STALE_NAN),
        )
        app.commit()
