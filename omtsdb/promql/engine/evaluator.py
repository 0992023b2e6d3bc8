"""The evaluator: every node is evaluated for all steps of the query at once."""

from __future__ import annotations

import time
from typing import Union

import numpy as np

from omtsdb.errors import BadDataError, ExecutionError, QueryTimeoutError, TooManySamplesError
from omtsdb.model.labels import METRIC_NAME, Labels
from omtsdb.model.matchers import MatchType
from omtsdb.model.samples import F64, I64, stale_mask
from omtsdb.promql.engine import annotate as anno
from omtsdb.promql.engine import binops
from omtsdb.promql.engine.aggregate import aggregate, check_param
from omtsdb.promql.engine.block import Block
from omtsdb.promql.engine.calls import call_function
from omtsdb.promql.engine.hints import NO_PARENT, Parent, selector_parents
from omtsdb.promql.functions.counters import overlapping_windows
from omtsdb.promql.functions.rollups import MAX_CELLS, ROLLUPS, Windows
from omtsdb.promql.parser.ast import (
    AggregateExpr,
    AtModifier,
    BinaryExpr,
    Call,
    Expr,
    MatrixSelector,
    NumberLiteral,
    ParenExpr,
    StringLiteral,
    SubqueryExpr,
    UnaryExpr,
    VectorMatching,
    VectorSelector,
)
from omtsdb.storage.interface import Queryable, SelectHints, SeriesBatch, SeriesData

Value = Union[Block, F64, str, list[SeriesData]]  # noqa: UP007


# range functions that read start timestamps (Prometheus 3.14, use-start-timestamps)
ST_FUNCS = frozenset({"rate", "increase", "irate", "resets"})
ST_OVERLAP_FUNCS = frozenset({"rate", "increase"})


class FlatSeries:
    """Samples of many series back to back, for window look-ups across all of them at once."""

    __slots__ = ("_key", "base", "offsets", "span", "st", "ts", "vs")

    def __init__(self, ts: I64, vs: F64, offsets: I64, st: I64 | None = None) -> None:
        self.ts, self.vs, self.offsets, self.st = ts, vs, offsets, st
        self.base = int(ts.min()) if ts.size else 0
        self.span = (int(ts.max()) - self.base + 1) if ts.size else 1
        self._key: I64 | None = None

    @classmethod
    def of(cls, batch: SeriesBatch) -> FlatSeries:
        return cls(batch.ts, batch.vs, batch.offsets, batch.st)

    @property
    def key(self) -> I64:
        """``series * span + (t - base)``: sorted, for one searchsorted over all series."""
        if self._key is None:
            sid = np.repeat(np.arange(self.offsets.size - 1, dtype=np.int64), np.diff(self.offsets))
            self._key = sid * self.span + (self.ts - self.base)
        return self._key

    def windows(self, start: I64, end: I64) -> tuple[I64, I64]:
        """Index bounds (into ``ts``/``vs``) of the samples with ``start < t <= end`` for every
        (series, step), flattened series-major."""
        n = end.size
        if n == 1 and (
            not self.ts.size or (self.base > start[0] and self.base + self.span <= end[0] + 1)
        ):
            # one step whose window holds every sample (the select asked for just that)
            return self.offsets[:-1].copy(), self.offsets[1:].copy()
        if n >= 2 and self.ts.size:
            step = int(end[1] - end[0])
            if (
                step > 0
                and int(end[-1] - end[0]) == step * (n - 1)
                and not np.any(np.diff(end) != step)
                and not np.any((end - start) != (end[0] - start[0]))
            ):
                return self._grid_windows(int(start[0]), int(end[0]), step, n)
        return self._searched_windows(start, end)

    def _count_upto(self, base: I64, first: int, step: int, n: int) -> I64:
        """Per (series, step j): the index just past the series' samples with
        ``t <= first + j*step``. ``base`` is each sample's series times ``n + 1``."""
        ns = self.offsets.size - 1
        # ceil((t - first) / step), clipped to [0, n]: the first grid step j with t <= t_j
        idx = first - self.ts
        idx //= step
        np.negative(idx, out=idx)
        np.clip(idx, 0, n, out=idx)
        idx += base
        counts = np.bincount(idx, minlength=ns * (n + 1)).reshape(ns, n + 1)[:, :n]
        out: I64 = np.cumsum(counts, axis=1)
        out += self.offsets[:-1, None]
        return out.ravel()

    def _grid_windows(self, first_start: int, first_end: int, step: int, n: int) -> tuple[I64, I64]:
        ns = self.offsets.size - 1
        base = np.repeat(np.arange(0, ns * (n + 1), n + 1, dtype=np.int64), np.diff(self.offsets))
        lo = self._count_upto(base, first_start, step, n)
        hi = self._count_upto(base, first_end, step, n)
        return lo, np.maximum(hi, lo)

    def _searched_windows(self, start: I64, end: I64) -> tuple[I64, I64]:
        ns = self.offsets.size - 1
        sid = np.arange(ns, dtype=np.int64)[:, None]
        s_rel = np.clip(start - self.base, -1, self.span)[None, :]
        e_rel = np.clip(end - self.base, -1, self.span)[None, :]
        lo_key = (sid * self.span + s_rel).ravel()
        hi_key = (sid * self.span + e_rel).ravel()
        lo = np.searchsorted(self.key, lo_key, "right").astype(np.int64)
        hi = np.searchsorted(self.key, hi_key, "right").astype(np.int64)
        # clip into each series' own span (keys at -1/span may cross into a neighbour)
        first = np.repeat(self.offsets[:-1], start.size)
        last = np.repeat(self.offsets[1:], start.size)
        lo = np.clip(lo, first, last)
        hi = np.clip(hi, first, last)
        return lo, np.maximum(hi, lo)


class Context:
    """What all evaluators of one query share: storage, limits, annotations."""

    def __init__(
        self,
        queryable: Queryable,
        start: int,
        end: int,
        lookback: int,
        max_samples: int,
        deadline: float,
        default_step: int,
        delayed_names: bool = False,
        use_start_timestamps: bool = True,
    ) -> None:
        self.queryable = queryable
        self.start = start
        self.end = end
        self.lookback = lookback
        self.max_samples = max_samples
        self.deadline = deadline
        self.default_step = default_step
        # Prometheus's delayed __name__ removal: names marked for dropping are dropped only
        # on the final result (and at subquery boundaries); otherwise after every node.
        self.delayed_names = delayed_names
        # per-sample start timestamps in rate/increase/irate/resets and start_timestamp()
        self.use_start_timestamps = use_start_timestamps
        # start-time overlap warnings: metric -> (count, index in warnings, position)
        self.st_overlaps: dict[str, tuple[int, int, str]] = {}
        self.samples = 0
        self.warnings: list[str] = []
        self.infos: list[str] = []
        self.query = ""  # the query text, for annotation positions
        self.step = 0  # the range query's step (0 for an instant query)
        self.expr: Expr | None = None  # the expression, for the selectors' storage hints
        self._parents: dict[int, Parent] | None = None

    def check_time(self) -> None:
        if time.monotonic() > self.deadline:
            raise QueryTimeoutError("query timed out in expression evaluation")

    def hints(self, vs: VectorSelector, mint: int, maxt: int, range_ms: int) -> SelectHints:
        """The storage hints of one select (see ``engine.hints``)."""
        if self._parents is None:
            self._parents = selector_parents(self.expr) if self.expr is not None else {}
        func, by, grouping = self._parents.get(id(vs), NO_PARENT)
        return SelectHints(
            mint, maxt, self.step, func, grouping, by, range_ms, deadline=self.deadline
        )

    def select(self, vs: VectorSelector, mint: int, maxt: int, range_ms: int = 0) -> SeriesBatch:
        with self.queryable.querier(mint, maxt) as q:
            got = q.select_batch(vs.matchers, mint, maxt, self.hints(vs, mint, maxt, range_ms))
        for w in got.warnings:
            if w not in self.warnings:
                self.warnings.append(w)
        self.samples += got.ts.size
        if self.samples > self.max_samples:
            raise TooManySamplesError()
        return got


class Evaluator:
    def __init__(self, ctx: Context, times: I64) -> None:
        self.ctx = ctx
        self.times = times

    @property
    def n(self) -> int:
        return int(self.times.size)

    # -- entry --------------------------------------------------------------------------------
    def eval(self, e: Expr) -> Value:
        v = self._eval(e)
        if isinstance(v, Block) and v.drop is not None and not self.ctx.delayed_names:
            return v.apply_drop()
        return v

    def _eval(self, e: Expr) -> Value:
        self.ctx.check_time()
        if isinstance(e, NumberLiteral):
            return np.full(self.n, e.value)
        if isinstance(e, StringLiteral):
            return e.value
        if isinstance(e, ParenExpr):
            return self.eval(e.expr)
        if isinstance(e, UnaryExpr):
            v = self.eval(e.expr)
            if e.op == "+":
                return v
            if isinstance(v, Block):
                return Block(v.labels, -v.vals, v.mask, drop=v.drop).mark_drop()
            assert isinstance(v, np.ndarray)
            return -v
        if isinstance(e, VectorSelector):
            return self.instant_selector(e)
        if isinstance(e, MatrixSelector):
            return self.range_series(e)
        if isinstance(e, SubqueryExpr):
            return self.subquery_series(e)
        if isinstance(e, Call):
            return call_function(self, e)
        if isinstance(e, AggregateExpr):
            return self.aggregation(e)
        if isinstance(e, BinaryExpr):
            return self.binary(e)
        raise ExecutionError(f"cannot evaluate {type(e).__name__}")

    def eval_block(self, e: Expr) -> Block:
        v = self.eval(e)
        if not isinstance(v, Block):
            raise ExecutionError("expected an instant vector")
        return v

    def eval_scalar(self, e: Expr) -> F64:
        v = self.eval(e)
        if not isinstance(v, np.ndarray):
            raise ExecutionError("expected a scalar")
        return v

    # -- time helpers ---------------------------------------------------------------------------
    def effective_times(self, offset: int, at_ms: int | None, at_mod: AtModifier | None) -> I64:
        if at_ms is not None:
            base = np.full(self.n, at_ms, np.int64)
        elif at_mod is AtModifier.START:
            base = np.full(self.n, self.ctx.start, np.int64)
        elif at_mod is AtModifier.END:
            base = np.full(self.n, self.ctx.end, np.int64)
        else:
            base = self.times
        out: I64 = base - offset
        return out

    # -- selectors ------------------------------------------------------------------------------
    def instant_selector(
        self, vs: VectorSelector, want_ts: bool = False, want_st: bool = False
    ) -> Block:
        """Latest sample in (t - lookback, t] for every series and step, all at once; with
        ``want_ts``/``want_st`` its timestamp/start timestamp (0: unknown) in seconds."""
        t = self.effective_times(vs.offset_ms, vs.at_ms, vs.at_modifier)
        lb = self.ctx.lookback
        if t.size == 0:
            return Block.empty(0)
        series = self.ctx.select(vs, int(t.min()) - lb + 1, int(t.max()))
        if not len(series):
            return Block.empty(self.n)
        flat = FlatSeries.of(series)
        ns, nt = len(series), self.n
        lo, hi = flat.windows(t - lb, t)
        ok = hi > lo
        idx = np.maximum(hi - 1, 0)
        v = flat.vs[idx] if flat.vs.size else np.zeros(idx.size)
        ok &= ~stale_mask(v)
        if want_st:
            st = flat.st if flat.st is not None else np.zeros(flat.ts.size, np.int64)
            vals = st[idx] / 1000.0 if st.size else np.zeros(idx.size)
        else:
            vals = flat.ts[idx] / 1000.0 if want_ts else v
        return Block(series.labels, vals.reshape(ns, nt), ok.reshape(ns, nt)).compact()

    def _raw_range(self, ms: MatrixSelector, t: I64) -> SeriesBatch:
        vs = ms.vector_selector
        series = self.ctx.select(vs, int(t.min()) - ms.range_ms + 1, int(t.max()), ms.range_ms)
        return series.take(~stale_mask(series.vs))

    def range_series(self, ms: MatrixSelector) -> list[SeriesData]:
        """A range vector at the (single) evaluation time: raw samples of each window."""
        vs = ms.vector_selector
        t = self.effective_times(vs.offset_ms, vs.at_ms, vs.at_modifier)
        if t.size != 1:
            raise BadDataError("a range vector can only be evaluated in an instant query")
        out = []
        for s in self._raw_range(ms, t).series():
            lo = int(np.searchsorted(s.ts, t[0] - ms.range_ms, "right"))
            hi = int(np.searchsorted(s.ts, t[0], "right"))
            if hi > lo:
                out.append(SeriesData(s.labels, s.ts[lo:hi], s.vs[lo:hi]))
        return out

    def subquery_inner(self, sq: SubqueryExpr, t: I64) -> SeriesBatch:
        """Evaluate the subquery's expression on its own step grid covering every window."""
        step = sq.step_ms or self.ctx.default_step
        first = int(t.min()) - sq.range_ms
        start = -(-first // step) * step  # first multiple of step >= first
        end = int(t.max())
        if end < start:
            return SeriesBatch.empty()
        grid = np.arange(start, end + 1, step, dtype=np.int64)
        inner = Evaluator(self.ctx, grid)
        blk = inner.eval_block(sq.expr).apply_drop()
        if not len(blk.labels):
            return SeriesBatch.empty()
        mask = blk.mask
        ts = np.broadcast_to(grid, mask.shape)[mask]
        lens = mask.sum(axis=1)
        return SeriesBatch(
            blk.labels, ts, blk.vals[mask], np.concatenate(([0], np.cumsum(lens)))
        ).take()

    def subquery_series(self, sq: SubqueryExpr) -> list[SeriesData]:
        t = self.effective_times(sq.offset_ms, sq.at_ms, sq.at_modifier)
        if t.size != 1:
            raise BadDataError("a range vector can only be evaluated in an instant query")
        out = []
        for s in self.subquery_inner(sq, t).series():
            lo = int(np.searchsorted(s.ts, t[0] - sq.range_ms, "right"))
            hi = int(np.searchsorted(s.ts, t[0], "right"))
            if hi > lo:
                out.append(SeriesData(s.labels, s.ts[lo:hi], s.vs[lo:hi]))
        return out

    def range_input(self, e: Expr) -> tuple[SeriesBatch, I64, int]:
        """Series, window end times and range for a range-vector function argument."""
        if isinstance(e, ParenExpr):
            return self.range_input(e.expr)
        if isinstance(e, MatrixSelector):
            vs = e.vector_selector
            t = self.effective_times(vs.offset_ms, vs.at_ms, vs.at_modifier)
            return self._raw_range(e, t), t, e.range_ms
        if isinstance(e, SubqueryExpr):
            t = self.effective_times(e.offset_ms, e.at_ms, e.at_modifier)
            return self.subquery_inner(e, t), t, e.range_ms
        raise ExecutionError("expected a range vector")

    def rollup(self, name: str, e: Expr, args: tuple[F64, ...]) -> Block:
        """Evaluate a range function for every (series, step) window at once: the samples of
        all series are concatenated and each window is found by one keyed searchsorted."""
        _check_range_modifier(name, e)
        series, t, rng = self.range_input(e)
        if not len(series):
            return Block.empty(self.n)
        if series.st is not None and (name not in ST_FUNCS or not self.ctx.use_start_timestamps):
            series = series.without_st()
        fn = ROLLUPS[name]
        flat = FlatSeries.of(series)
        lo, hi = flat.windows(t - rng, t)
        ns, nt = len(series), self.n
        tt = np.tile(t, ns)
        targs = tuple(np.tile(x, ns) for x in args)
        width = int((hi - lo).max()) if lo.size else 0
        rows = lo.size
        if width * rows <= MAX_CELLS or width == 0:
            v, m = fn(Windows(flat.ts, flat.vs, lo, hi, tt, rng, flat.st), targs)
        else:  # bound the gathered window matrix: evaluate in row chunks
            chunk = max(1, MAX_CELLS // width)
            parts_v, parts_m = [], []
            for a in range(0, rows, chunk):
                sl = slice(a, a + chunk)
                sub = Windows(flat.ts, flat.vs, lo[sl], hi[sl], tt[sl], rng, flat.st)
                pv, pm = fn(sub, tuple(x[sl] for x in targs))
                parts_v.append(pv)
                parts_m.append(pm)
                self.ctx.check_time()
            v, m = np.concatenate(parts_v), np.concatenate(parts_m)
        if flat.st is not None and name in ST_OVERLAP_FUNCS:
            over = overlapping_windows(Windows(flat.ts, flat.vs, lo, hi, tt, rng, flat.st))
            if over.any():
                per_series = over.reshape(ns, nt).sum(axis=1)
                for i in np.flatnonzero(per_series).tolist():
                    anno.start_time_overlap(
                        self.ctx, series.labels[i].name, int(per_series[i]), e.pos
                    )
        return Block(series.labels, v.reshape(ns, nt), m.reshape(ns, nt)).compact()

    # -- operators --------------------------------------------------------------------------
    def aggregation(self, e: AggregateExpr) -> Block:
        blk = self.eval_block(e.expr)
        param: F64 | str | None = None
        if e.param is not None:
            p = self.eval(e.param)
            if isinstance(p, Block):
                raise ExecutionError("aggregation parameter must be a scalar")
            param = p if isinstance(p, str) else np.asarray(p)
        if not check_param(self.ctx, e, param):
            return Block.empty(self.n)
        out = aggregate(e.op, blk, param, e.grouping, e.without).compact()
        if blk.drop is not None and blk.drop.any() and len(out):
            out = _aggregated_drop(e, blk, out)
        return out

    def binary(self, e: BinaryExpr) -> Value:
        lhs = self.eval(e.lhs)
        rhs = self.eval(e.rhs)
        if isinstance(lhs, np.ndarray) and isinstance(rhs, np.ndarray):
            return binops.scalar_scalar(e.op, lhs, rhs)
        if isinstance(lhs, Block) and isinstance(rhs, np.ndarray):
            return binops.vector_scalar(e.op, lhs, rhs, False, e.return_bool).compact()
        if isinstance(lhs, np.ndarray) and isinstance(rhs, Block):
            return binops.vector_scalar(e.op, rhs, lhs, True, e.return_bool).compact()
        if isinstance(lhs, Block) and isinstance(rhs, Block):
            m = e.matching or VectorMatching()
            return binops.vector_vector(e.op, lhs, rhs, m, e.return_bool).compact().check_unique()
        raise ExecutionError("invalid operands for binary expression")


ANCHORED_SAFE = ("changes", "delta", "increase", "rate", "resets")
SMOOTHED_SAFE = ("delta", "increase", "rate")


def _check_range_modifier(fn: str, e: Expr) -> None:
    """The experimental anchored/smoothed range modifiers work with a few functions only."""
    if not isinstance(e, MatrixSelector):
        return
    vs = e.vector_selector
    for on, which, safe in (
        (vs.anchored, "anchored", ANCHORED_SAFE),
        (vs.smoothed, "smoothed", SMOOTHED_SAFE),
    ):
        if on and fn not in safe:
            raise ExecutionError(
                f"{which} modifier can only be used with: {', '.join(safe)} - not with {fn}"
            )


def _aggregated_drop(e: AggregateExpr, blk: Block, out: Block) -> Block:
    """Carry names marked for dropping through an aggregation: series kept as they are
    (topk, ...) keep their mark; a group is marked when any of its series is. Only groups that
    keep ``__name__`` (``by (__name__, ...)``) are affected."""
    flagged = [lb for lb, d in zip(blk.labels, blk.drop.tolist(), strict=True) if d]  # type: ignore[union-attr]
    if e.op in ("topk", "bottomk", "limitk", "limit_ratio"):
        keep = set(flagged)
        return out.mark_drop(np.array([lb in keep for lb in out.labels], np.bool_))
    if e.without or METRIC_NAME not in e.grouping:
        return out
    groups = {lb.keep(*e.grouping) for lb in flagged}
    return out.mark_drop(np.array([lb.keep(*e.grouping) in groups for lb in out.labels], np.bool_))


def absent_labels(e: Expr) -> Labels:
    """Labels of absent()/absent_over_time() output: the selector's equality matchers."""
    while isinstance(e, ParenExpr):
        e = e.expr
    vs: VectorSelector | None = None
    if isinstance(e, VectorSelector):
        vs = e
    elif isinstance(e, MatrixSelector):
        vs = e.vector_selector
    if vs is None:
        return Labels()
    # as Prometheus: the first equality matcher of a name sets it, any other matcher of that
    # name (a second equality or a non-equality) removes it
    pairs: dict[str, str] = {}
    seen: set[str] = set()
    for m in vs.matchers:
        if m.name == METRIC_NAME:
            continue
        if m.type is MatchType.EQ and m.name not in seen:
            pairs[m.name] = m.value
            seen.add(m.name)
        else:
            pairs.pop(m.name, None)
    return Labels(pairs)
