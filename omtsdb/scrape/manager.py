"""The scrape manager: one pool per ``scrape_configs`` job, one loop per target.

``apply`` takes a new configuration and syncs: unchanged pools keep running, changed pools are
rebuilt with their loops' state carried over (no spurious staleness), removed pools and targets
get staleness markers. File-based discovery is polled: files are re-read when their modification
time changes and at every ``refresh_interval``; a file that fails to parse keeps its previous
target groups.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from concurrent.futures import Executor
from pathlib import Path

from omtsdb.config.filesd import (
    FILEPATH_LABEL,
    FileSDError,
    TargetGroup,
    list_files,
    read_file_sd,
)
from omtsdb.config.model import Config, ScrapeConfig
from omtsdb.model.labels import Labels
from omtsdb.scrape.http import ScrapeClient
from omtsdb.scrape.loop import AppendSink, ScrapeLoop
from omtsdb.scrape.target import Target, targets_from_groups
from omtsdb.storage.metadata import MetadataStore

log = logging.getLogger(__name__)
FILE_POLL_S = 5.0


class ScrapePool:
    def __init__(
        self,
        cfg: ScrapeConfig,
        base_dir: str,
        sink: AppendSink,
        executor: Executor,
        metadata: MetadataStore | None,
    ) -> None:
        self.cfg = cfg
        self.base_dir = base_dir
        self.sink = sink
        self.executor = executor
        self.metadata = metadata
        self.client = ScrapeClient(cfg)
        self.loops: dict[tuple[Labels, str], ScrapeLoop] = {}
        self.dropped: list[Labels] = []
        self.errors: list[str] = []
        self._file_groups: dict[int, list[TargetGroup]] = {}
        self._file_mtimes: dict[int, dict[str, float]] = {}
        self._sd_task: asyncio.Task[None] | None = None

    def static_groups(self) -> list[TargetGroup]:
        return [
            TargetGroup(sc.targets, sc.labels, f"{i}")
            for i, sc in enumerate(self.cfg.static_configs)
        ]

    def _file_mtimes_now(self, i: int) -> dict[str, float]:
        out: dict[str, float] = {}
        for f in list_files(self.cfg.file_sd_configs[i], self.base_dir):
            with contextlib.suppress(OSError):
                out[f] = os.stat(f).st_mtime
        return out

    def _refresh_files(self, i: int) -> bool:
        """Re-read file SD config ``i``. A file that fails to parse keeps its previous groups
        (as Prometheus does); returns whether anything was read."""
        try:
            groups = read_file_sd(self.cfg.file_sd_configs[i], self.base_dir)
        except FileSDError as e:
            log.error("file_sd in job %s: %s", self.cfg.job_name, e)
            old = self._file_groups.get(i, [])
            kept = [g for g in old if g.labels.get(FILEPATH_LABEL) in e.failed]
            groups = e.groups + kept
        self._file_groups[i] = groups
        self._file_mtimes[i] = self._file_mtimes_now(i)
        return True

    async def start(self, previous: ScrapePool | None = None) -> None:
        for i in range(len(self.cfg.file_sd_configs)):
            self._refresh_files(i)
        await self.sync(previous)
        if self.cfg.file_sd_configs:
            self._sd_task = asyncio.get_running_loop().create_task(self._watch_files())

    async def _watch_files(self) -> None:
        since_refresh = [0.0] * len(self.cfg.file_sd_configs)
        while True:
            await asyncio.sleep(FILE_POLL_S)
            changed = False
            for i, fc in enumerate(self.cfg.file_sd_configs):
                since_refresh[i] += FILE_POLL_S
                due = since_refresh[i] * 1000 >= fc.refresh_interval_ms
                if due or self._file_mtimes_now(i) != self._file_mtimes.get(i):
                    since_refresh[i] = 0.0
                    changed |= self._refresh_files(i)
            if changed:
                await self.sync()

    def groups(self) -> list[TargetGroup]:
        out = self.static_groups()
        for i in sorted(self._file_groups):
            out.extend(self._file_groups[i])
        return out

    async def sync(self, previous: ScrapePool | None = None) -> None:
        """Start loops for new targets, stop (with staleness) loops of vanished ones."""
        active, self.dropped, self.errors = targets_from_groups(self.cfg, self.groups())
        for err in self.errors:
            log.warning("job %s: %s", self.cfg.job_name, err)
        if self.cfg.target_limit and len(active) > self.cfg.target_limit:
            err = (
                f"target_limit exceeded (number of targets: {len(active)}, limit: "
                f"{self.cfg.target_limit})"
            )
            for t in active:
                t.health, t.last_error = "down", err
            active_keys: dict[tuple[Labels, str], Target] = {}
        else:
            active_keys = {t.key: t for t in active}
        old_loops = dict(self.loops)
        if previous is not None:
            old_loops.update(previous.loops)
        self.loops = {}
        for key, t in active_keys.items():
            old = old_loops.pop(key, None)
            if old is not None and previous is None:
                self.loops[key] = old
                continue
            loop = ScrapeLoop(t, self.cfg, self.client, self.sink, self.executor, self.metadata)
            if old is not None:  # carried over from the pool this one replaces
                await old.stop(stale=False)
                loop.previous = old.previous
            self.loops[key] = loop
            loop.start()
        for old in old_loops.values():
            await old.stop(stale=True)

    async def stop_discovery(self) -> None:
        if self._sd_task is not None:
            self._sd_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sd_task
            self._sd_task = None

    async def stop(self, stale: bool = True) -> None:
        """Stop discovery and every loop (with staleness markers when ``stale``)."""
        await self.stop_discovery()
        await asyncio.gather(*(lp.stop(stale=stale) for lp in self.loops.values()))
        self.loops = {}
        await self.client.close()

    def targets(self) -> list[Target]:
        return [lp.target for lp in self.loops.values()]


class ScrapeManager:
    def __init__(
        self, sink: AppendSink, executor: Executor, metadata: MetadataStore | None = None
    ) -> None:
        self.sink = sink
        self.executor = executor
        self.metadata = metadata
        self.pools: dict[str, ScrapePool] = {}
        self._lock = asyncio.Lock()

    async def apply(self, cfg: Config) -> None:
        base_dir = str(Path(cfg.path).parent) if cfg.path else "."
        async with self._lock:
            new: dict[str, ScrapePool] = {}
            for sc in cfg.scrape_configs:
                old = self.pools.pop(sc.job_name, None)
                if old is not None and old.cfg == sc and old.base_dir == base_dir:
                    new[sc.job_name] = old
                    continue
                pool = ScrapePool(sc, base_dir, self.sink, self.executor, self.metadata)
                if old is not None:
                    await old.stop_discovery()
                await pool.start(previous=old)
                if old is not None:
                    await old.client.close()
                new[sc.job_name] = pool
            for old in self.pools.values():
                await old.stop(stale=True)
            self.pools = new

    async def stop(self) -> None:
        async with self._lock:
            await asyncio.gather(*(p.stop(stale=False) for p in self.pools.values()))
            self.pools = {}

    def active_targets(self) -> list[Target]:
        return [t for p in self.pools.values() for t in p.targets()]
