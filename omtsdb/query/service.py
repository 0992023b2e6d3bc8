"""The query service: every PromQL query of the server goes through it (the HTTP API, and the
rules engine, the AI layer and the result cache through the narrow callables below).

One query, in order:

1. the text is refused when longer than ``max_length`` bytes (400, before anything else);
2. the deadline is set: now + the smaller of ``timeout_s`` and the request's ``timeout=``;
   it covers queueing, parsing and evaluation;
3. a query whose cost is known to be small runs on the calling event loop (see
   ``query.costs``: bounded by what it selects and by a time slice, re-run in the pool when it
   crosses either); every other query waits for a slot of the pool (``max_concurrency``
   threads) and is parsed and evaluated there, never on the loop;
4. past the deadline the caller gets ``QueryTimeoutError`` (503 ``timeout``): "query timed out
   in query queue" when it never got a slot, "... in expression evaluation" otherwise; the
   engine stops at its next deadline check;
5. parse errors become ``invalid parameter "query": ...`` (400), as Prometheus answers.

Range queries are checked here, in one place, against Prometheus's point limit:
``(end - start) / step > 11000`` is refused (so 11,001 points are allowed, as in Prometheus).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Hashable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Generic, TypeVar

from omtsdb.errors import (
    BadDataError,
    ParseError,
    QueryTimeoutError,
    TooManySamplesError,
)
from omtsdb.obs.metrics import ENGINE_QUERIES, ENGINE_QUERIES_MAX, ENGINE_QUERY_DURATION
from omtsdb.promql.engine import Engine
from omtsdb.promql.parser.ast import ValueType
from omtsdb.promql.parser.types import expr_type
from omtsdb.promql.value import Result
from omtsdb.query.costs import Cost, CostTable, Counted, OverBudget
from omtsdb.storage.interface import Queryable

T = TypeVar("T")

# What the rules engine, the AI layer and the result cache are handed: an instant query at
# t (ms) and a range query over [start, end] (ms) at step (ms). Call them from a thread of
# your own, never from the event loop or from a query pool thread.
InstantQuery = Callable[[str, int], Result]
RangeQuery = Callable[[str, int, int, int], Result]

QUEUE_TIMEOUT = "query timed out in query queue"
EVAL_TIMEOUT = "query timed out in expression evaluation"


@dataclass(frozen=True, slots=True)
class QueryLimits:
    timeout_s: float = 120.0  # --query.timeout
    max_concurrency: int = 20  # --query.max-concurrency: pool threads
    max_length: int = 128 * 1024  # --query.max-length: bytes of query text
    max_samples: int | None = None  # None: the engine's --query.max-samples
    max_points_per_series: int = 11_000  # Prometheus's fixed range-query resolution limit
    # the inline bound (query.costs): what a query may select to run on the event loop,
    # and the time slice after which an inline run is stopped and re-run in the pool
    inline_max_series: int = 500
    inline_max_samples: int = 100_000
    inline_max_s: float = 0.02
    inline_max_length: int = 4096  # longer texts may have fallen out of the parse cache


def check_range(start_ms: int, end_ms: int, step_ms: int, max_points: int = 11_000) -> None:
    """Prometheus's checks of a range query's times, in its order and with its texts."""
    if end_ms < start_ms:
        raise BadDataError('invalid parameter "end": end timestamp must not be before start time')
    if step_ms <= 0:
        raise BadDataError(
            'invalid parameter "step": zero or negative query resolution step '
            "widths are not accepted. Try a positive integer"
        )
    if (end_ms - start_ms) // step_ms > max_points:
        raise BadDataError(
            "exceeded maximum resolution of 11,000 points per timeseries. "
            "Try decreasing the query resolution (?step=XX)"
        )


@dataclass(frozen=True, slots=True)
class _Query:
    """One query's parameters (``range`` when ``step`` > 0)."""

    text: str
    start: int
    end: int
    step: int
    lookback_ms: int | None
    stats: bool

    @property
    def key(self) -> Hashable:
        """What makes two runs cost the same: text and shape, not the absolute time."""
        return (self.text, self.end - self.start, self.step, self.lookback_ms)


class QueryService:
    def __init__(
        self, engine: Engine, queryable: Queryable, limits: QueryLimits | None = None
    ) -> None:
        self.engine = engine
        self.queryable = queryable
        self.limits = limits or QueryLimits()
        n = max(1, self.limits.max_concurrency)
        self.pool = ThreadPoolExecutor(max_workers=n, thread_name_prefix="query")
        lim = self.limits
        self.costs = CostTable(Cost(lim.inline_max_series, lim.inline_max_samples))
        ENGINE_QUERIES_MAX.set(n)

    def close(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)

    # -- the narrow callables ----------------------------------------------------------------

    @property
    def instant_fn(self) -> InstantQuery:
        return self.instant_sync

    @property
    def range_fn(self) -> RangeQuery:
        return self.range_sync

    def instant_sync(
        self,
        query: str,
        t_ms: int,
        *,
        timeout_s: float | None = None,
        lookback_ms: int | None = None,
        stats: bool = False,
    ) -> Result:
        """An instant query from a thread of the caller's (rules, AI), run on the pool."""
        return self._sync(_Query(query, t_ms, t_ms, 0, lookback_ms, stats), timeout_s)

    def range_sync(
        self,
        query: str,
        start_ms: int,
        end_ms: int,
        step_ms: int,
        *,
        timeout_s: float | None = None,
        lookback_ms: int | None = None,
        stats: bool = False,
    ) -> Result:
        """A range query from a thread of the caller's, run on the pool."""
        check_range(start_ms, end_ms, step_ms, self.limits.max_points_per_series)
        q = _Query(query, start_ms, end_ms, step_ms, lookback_ms, stats)
        return self._sync(q, timeout_s)

    # -- the HTTP API's calls --------------------------------------------------------------

    async def instant(
        self,
        query: str,
        t_ms: int,
        *,
        timeout_s: float | None = None,
        lookback_ms: int | None = None,
        stats: bool = False,
    ) -> Result:
        return await self._async(_Query(query, t_ms, t_ms, 0, lookback_ms, stats), timeout_s)

    async def range(
        self,
        query: str,
        start_ms: int,
        end_ms: int,
        step_ms: int,
        *,
        timeout_s: float | None = None,
        lookback_ms: int | None = None,
        stats: bool = False,
    ) -> Result:
        check_range(start_ms, end_ms, step_ms, self.limits.max_points_per_series)
        q = _Query(query, start_ms, end_ms, step_ms, lookback_ms, stats)
        return await self._async(q, timeout_s)

    async def run(self, fn: Callable[[], T], *, timeout_s: float | None = None) -> T:
        """Other storage work of the API (label and series look-ups, federation) on the same
        pool, within the same timeout."""
        deadline = self.deadline(timeout_s)
        return await self._await(self._submit(lambda _d, _w: fn(), deadline), deadline)

    # -- the machinery ---------------------------------------------------------------------

    def deadline(self, timeout_s: float | None) -> float:
        t = self.limits.timeout_s
        if timeout_s is not None:
            t = min(t, timeout_s)
        return time.monotonic() + max(t, 0.0)

    def check_length(self, text: str) -> None:
        """Refuse a query text longer than ``max_length`` bytes (400)."""
        if len(text) * 4 <= self.limits.max_length:
            return  # short enough whatever its characters
        n = len(text.encode("utf-8", "surrogatepass"))
        if n > self.limits.max_length:
            raise BadDataError(
                f'invalid parameter "query": the query is {n} bytes long, more than the '
                f"{self.limits.max_length} bytes allowed (--query.max-length)"
            )

    async def _async(self, q: _Query, timeout_s: float | None) -> Result:
        self.check_length(q.text)
        deadline = self.deadline(timeout_s)
        ENGINE_QUERIES.inc()
        try:
            if len(q.text) <= self.limits.inline_max_length and self.costs.cheap(q.key):
                got = self._inline(q, deadline)
                if got is not None:
                    return got
            job = self._submit(lambda d, w: self._pooled(q, d, w), deadline)
            return await self._await(job, deadline)
        finally:
            ENGINE_QUERIES.dec()

    def _sync(self, q: _Query, timeout_s: float | None) -> Result:
        self.check_length(q.text)
        deadline = self.deadline(timeout_s)
        ENGINE_QUERIES.inc()
        try:
            job = self._submit(lambda d, w: self._pooled(q, d, w), deadline)
            try:
                return job.future.result(timeout=max(0.0, deadline - time.monotonic()))
            except TimeoutError:
                raise job.timed_out() from None
        finally:
            ENGINE_QUERIES.dec()

    def _submit(self, work: Callable[[float, float], T], deadline: float) -> _Job[T]:
        """Queue ``work(deadline, seconds waited)`` on the pool."""
        job: _Job[T] = _Job()
        queued = time.perf_counter()

        def run() -> T:
            waited = time.perf_counter() - queued
            ENGINE_QUERY_DURATION.labels("queue_time").observe(waited)
            if time.monotonic() > deadline:
                raise QueryTimeoutError(QUEUE_TIMEOUT)
            job.started = True
            t0 = time.perf_counter()
            try:
                return work(deadline, waited)
            finally:
                ENGINE_QUERY_DURATION.labels("inner_eval").observe(time.perf_counter() - t0)

        job.future = self.pool.submit(run)
        return job

    async def _await(self, job: _Job[T], deadline: float) -> T:
        wrapped = asyncio.wrap_future(job.future)
        # an answer that comes after the caller gave up is dropped without a log line
        wrapped.add_done_callback(lambda f: f.cancelled() or f.exception())
        try:
            return await asyncio.wait_for(
                asyncio.shield(wrapped), max(0.0, deadline - time.monotonic())
            )
        except TimeoutError:
            raise job.timed_out() from None

    def _pooled(self, q: _Query, deadline: float, waited: float) -> Result:
        counted = Counted(self.queryable)
        res = self._evaluate(q, counted, deadline, self.limits.max_samples)
        self.costs.record(q.key, counted.cost)
        if res.stats is not None:
            res.stats.exec_queue_time_s = waited
        return res

    def _inline(self, q: _Query, deadline: float) -> Result | None:
        """Run ``q`` on the loop within the inline bound; None when it crossed it (the cost
        table then forgets it until a pool run measures it again)."""
        lim = self.limits
        budget = Cost(lim.inline_max_series, lim.inline_max_samples)
        counted = Counted(self.queryable, budget)
        real_max = lim.max_samples if lim.max_samples is not None else self.engine.opts.max_samples
        slice_end = min(deadline, time.monotonic() + lim.inline_max_s)
        t0 = time.perf_counter()
        try:
            res = self._evaluate(q, counted, slice_end, min(real_max, budget.samples))
        except OverBudget:
            self.costs.forget(q.key)
            return None
        except QueryTimeoutError:
            if time.monotonic() > deadline:
                raise
            self.costs.forget(q.key)
            return None
        except TooManySamplesError:
            if budget.samples >= real_max:
                raise
            self.costs.forget(q.key)
            return None
        finally:
            ENGINE_QUERY_DURATION.labels("inner_eval").observe(time.perf_counter() - t0)
        self.costs.record(q.key, counted.cost)
        return res

    def _evaluate(
        self, q: _Query, queryable: Queryable, deadline: float, max_samples: int | None
    ) -> Result:
        try:
            expr = self.engine.parse(q.text)
        except ParseError as e:
            raise BadDataError(f'invalid parameter "query": {e}') from None
        if q.step:
            t = expr_type(expr)
            if t not in (ValueType.SCALAR, ValueType.VECTOR):
                raise BadDataError(
                    f'invalid parameter "query": invalid expression type "{t}" for range '
                    "query, must be Scalar or instant Vector"
                )
            return self.engine.range_query(
                queryable,
                q.text,
                q.start,
                q.end,
                q.step,
                stats=q.stats,
                lookback_delta_ms=q.lookback_ms,
                deadline=deadline,
                max_samples=max_samples,
            )
        return self.engine.instant_query(
            queryable,
            q.text,
            q.start,
            stats=q.stats,
            lookback_delta_ms=q.lookback_ms,
            deadline=deadline,
            max_samples=max_samples,
        )


class _Job(Generic[T]):
    """A query's pool job: its future, and whether it got a slot."""

    __slots__ = ("future", "started")

    def __init__(self) -> None:
        self.future: Future[T] = Future()
        self.started = False

    def timed_out(self) -> QueryTimeoutError:
        """The answer for a job the caller stopped waiting for (cancelled when it had not
        started: the slot it will never use goes to the next query)."""
        if self.future.cancel() or not self.started:
            return QueryTimeoutError(QUEUE_TIMEOUT)
        return QueryTimeoutError(EVAL_TIMEOUT)


__all__ = [
    "InstantQuery",
    "QueryLimits",
    "QueryService",
    "RangeQuery",
    "check_range",
]
