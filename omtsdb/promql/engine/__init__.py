"""The PromQL engine: ``Engine.instant_query`` / ``Engine.range_query``.

Every node is evaluated for all steps of the query at once (see ``evaluator``); storage is only
reached through ``storage.interface.Queryable``.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np

from omtsdb.errors import BadDataError
from omtsdb.model.labels import Labels
from omtsdb.promql.engine.block import Block
from omtsdb.promql.engine.evaluator import Context, Evaluator
from omtsdb.promql.parser import parse
from omtsdb.promql.parser.ast import Expr
from omtsdb.promql.parser.durexpr import has_duration_exprs
from omtsdb.promql.parser.durexpr import resolve as resolve_durations
from omtsdb.promql.value import Matrix, QueryStats, Result, Sample, Scalar, String, Vector
from omtsdb.storage.interface import Queryable, SeriesData


@dataclass(frozen=True, slots=True)
class EngineOpts:
    lookback_delta_ms: int = 300_000
    timeout_s: float = 120.0
    max_samples: int = 50_000_000
    default_eval_interval_ms: int = 60_000
    enable_experimental_functions: bool = False
    enable_experimental_syntax: bool = False
    # Prometheus's promql-delayed-name-removal feature flag (on in its test scripts).
    enable_delayed_name_removal: bool = False
    # Per-sample start timestamps in rate/increase/irate/resets and start_timestamp()
    # (Prometheus 3.14's use-start-timestamps; series without them are not affected).
    use_start_timestamps: bool = True


class Engine:
    def __init__(self, opts: EngineOpts | None = None) -> None:
        self.opts = opts or EngineOpts()
        # parsed queries (ASTs are immutable): dashboards repeat the same query texts
        self._parsed: OrderedDict[str, tuple[Expr, bool]] = OrderedDict()
        self._parsed_lock = threading.Lock()

    def parse(self, query: str) -> Expr:
        """The AST of ``query`` with this engine's parser options (cached by text; raises
        ``ParseError``)."""
        return self._parse(query)[0]

    def _parse(self, query: str | Expr) -> tuple[Expr, bool]:
        """The query's AST and whether it holds duration expressions (both cached by text)."""
        if not isinstance(query, str):
            return query, has_duration_exprs(query)
        with self._parsed_lock:
            got = self._parsed.get(query)
            if got is not None:
                self._parsed.move_to_end(query)
                return got
        exp = self.opts.enable_experimental_functions or self.opts.enable_experimental_syntax
        expr = parse(query, experimental=exp)
        got = (expr, has_duration_exprs(expr))
        with self._parsed_lock:
            self._parsed[query] = got
            if len(self._parsed) > 1024:
                self._parsed.popitem(last=False)
        return got

    def _prepared(self, query: str | Expr, step_ms: int, range_ms: int) -> Expr:
        """The AST with its duration expressions (if any) evaluated for this query."""
        expr, durations = self._parse(query)
        return resolve_durations(expr, step_ms, range_ms) if durations else expr

    def _context(
        self,
        queryable: Queryable,
        start: int,
        end: int,
        lookback: int | None,
        deadline: float | None,
        max_samples: int | None,
    ) -> Context:
        return Context(
            queryable,
            start,
            end,
            lookback if lookback is not None else self.opts.lookback_delta_ms,
            max_samples if max_samples is not None else self.opts.max_samples,
            deadline if deadline is not None else time.monotonic() + self.opts.timeout_s,
            self.opts.default_eval_interval_ms,
            self.opts.enable_delayed_name_removal,
            self.opts.use_start_timestamps,
        )

    def instant_query(
        self,
        queryable: Queryable,
        query: str | Expr,
        t_ms: int,
        *,
        stats: bool = False,
        lookback_delta_ms: int | None = None,
        deadline: float | None = None,
        max_samples: int | None = None,
    ) -> Result:
        t0 = time.perf_counter()
        expr = self._prepared(query, 0, 0)
        ctx = self._context(queryable, t_ms, t_ms, lookback_delta_ms, deadline, max_samples)
        ctx.query = query if isinstance(query, str) else ""
        ctx.expr = expr
        ev = Evaluator(ctx, np.array([t_ms], np.int64))
        v = ev.eval(expr)
        if isinstance(v, Block):
            v = v.apply_drop()
            value: Vector | Matrix | Scalar | String = _vector(v, t_ms)
        elif isinstance(v, str):
            value = String(t_ms, v)
        elif isinstance(v, list):
            value = sorted(v, key=lambda s: s.labels.sort_key())
        else:
            value = Scalar(t_ms, float(v[0]))
        return Result(value, ctx.warnings, ctx.infos, _stats(ctx, t0) if stats else None)

    def range_query(
        self,
        queryable: Queryable,
        query: str | Expr,
        start_ms: int,
        end_ms: int,
        step_ms: int,
        *,
        stats: bool = False,
        lookback_delta_ms: int | None = None,
        deadline: float | None = None,
        max_samples: int | None = None,
    ) -> Result:
        t0 = time.perf_counter()
        if step_ms <= 0:
            raise BadDataError(
                "zero or negative query resolution step widths are not accepted. "
                "Try a positive integer"
            )
        if end_ms < start_ms:
            raise BadDataError("end timestamp must not be before start time")
        expr = self._prepared(query, step_ms, end_ms - start_ms)
        from omtsdb.promql.parser.ast import ValueType
        from omtsdb.promql.parser.types import expr_type

        t = expr_type(expr)
        if t not in (ValueType.SCALAR, ValueType.VECTOR):
            raise BadDataError(
                f'invalid expression type "{t}" for range query, must be Scalar or instant Vector'
            )
        times = np.arange(start_ms, end_ms + 1, step_ms, dtype=np.int64)
        ctx = self._context(queryable, start_ms, end_ms, lookback_delta_ms, deadline, max_samples)
        ctx.query = query if isinstance(query, str) else ""
        ctx.expr = expr
        ctx.step = step_ms
        v = Evaluator(ctx, times).eval(expr)
        if isinstance(v, Block):
            v = v.apply_drop()
            matrix: Matrix = _matrix(v, times)
        else:
            assert isinstance(v, np.ndarray)
            matrix = [SeriesData(_empty_labels(), times, np.asarray(v, np.float64))]
        return Result(matrix, ctx.warnings, ctx.infos, _stats(ctx, t0) if stats else None)


def _empty_labels() -> Labels:
    return Labels()


def _vector(blk: Block, t: int) -> Vector:
    present = blk.mask[:, 0].tolist()
    vals = blk.vals[:, 0].tolist()
    return [Sample(lb, t, v) for lb, p, v in zip(blk.labels, present, vals, strict=True) if p]


def _matrix(blk: Block, times: np.ndarray) -> Matrix:
    out: Matrix = []
    for i, lb in enumerate(blk.labels):
        m = blk.mask[i]
        if m.any():
            out.append(SeriesData(lb, times[m], blk.vals[i][m]))
    out.sort(key=lambda s: s.labels.sort_key())
    return out


def _stats(ctx: Context, t0: float) -> QueryStats:
    dt = time.perf_counter() - t0
    return QueryStats(
        total_queryable_samples=ctx.samples,
        peak_samples=ctx.samples,
        exec_total_time_s=dt,
        inner_eval_time_s=dt,
    )


__all__ = ["Engine", "EngineOpts"]
