"""How long the event loop is held up: a task that sleeps ``interval`` seconds at a time and
measures how late it wakes. A hold-up of ``B`` seconds shows as a lateness of at least
``B - interval``; the default interval (50 ms: 20 wake-ups a second, ~0.5 % of a core on the
project machine, where one timer wake-up costs ~0.25 ms of CPU) suits production, the tests
sample every 5 ms.

Two histograms on ``/metrics``:

- ``omtsdb_event_loop_lag_seconds``: how late the loop woke (wall time). It includes waiting
  for the CPU and for the GIL, so it grows when the machine is busy;
- ``omtsdb_event_loop_blocked_seconds``: the part of that lateness the loop thread spent
  running (the smaller of the lag and the thread's CPU time over the interval): code that
  held the loop, such as a request handled on it. No request may hold it for more than
  50 ms; the tests of the query service assert on this one, which a loaded test machine
  does not disturb.
"""

from __future__ import annotations

import asyncio
import contextlib
import time

from omtsdb.obs.registry import Histogram

_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
LOOP_LAG = Histogram(
    "omtsdb_event_loop_lag_seconds",
    "How late the event loop woke from a timer (wall time).",
    buckets=_BUCKETS,
)
LOOP_BLOCKED = Histogram(
    "omtsdb_event_loop_blocked_seconds",
    "The part of the event loop's lateness that its own thread spent running (code holding "
    "the loop).",
    buckets=_BUCKETS,
)


class LoopLagMonitor:
    """Samples the running loop's lag until ``stop``; ``max_blocked`` is the worst seen."""

    def __init__(self, interval: float = 0.05) -> None:
        self.interval = interval
        self.max_lag = 0.0
        self.max_blocked = 0.0
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            t0, c0 = loop.time(), time.thread_time()
            await asyncio.sleep(self.interval)
            lag = max(0.0, loop.time() - t0 - self.interval)
            blocked = min(lag, max(0.0, time.thread_time() - c0))
            LOOP_LAG.observe(lag)
            LOOP_BLOCKED.observe(blocked)
            self.max_lag = max(self.max_lag, lag)
            self.max_blocked = max(self.max_blocked, blocked)
