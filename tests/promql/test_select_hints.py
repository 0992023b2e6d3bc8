"""The engine's storage hints: what each select tells the querier (Prometheus's
``extractFuncFromPath``/``extractGroupsFromPath`` rules), and warnings from storage reaching
the result."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from omtsdb.model.labels import Labels
from omtsdb.model.matchers import Matcher
from omtsdb.promql.engine import Engine
from omtsdb.storage.interface import Querier, QuerierBase, SelectHints, SeriesBatch
from omtsdb.storage.memory import MemoryStorage

T = 1_000_000


class Recording:
    """A Queryable that records the hints of every select and adds a warning."""

    def __init__(self, inner: MemoryStorage) -> None:
        self.inner = inner
        self.hints: list[tuple[str, SelectHints]] = []
        self.closed = 0

    def querier(self, mint: int, maxt: int) -> Querier:
        return _RecordingQuerier(self, self.inner.querier(mint, maxt))


class _RecordingQuerier(QuerierBase):
    def __init__(self, owner: Recording, inner: Querier) -> None:
        self.owner, self.inner = owner, inner

    def select_batch(
        self,
        matchers: Sequence[Matcher],
        mint: int,
        maxt: int,
        hints: SelectHints | None = None,
    ) -> SeriesBatch:
        assert hints is not None
        name = next(m.value for m in matchers if m.name == "__name__")
        self.owner.hints.append((name, hints))
        got = self.inner.select_batch(matchers, mint, maxt, hints)
        return got.with_warnings([f"from storage: {name}"])

    def label_names(self, matchers: Sequence[Matcher], mint: int, maxt: int) -> list[str]:
        return self.inner.label_names(matchers, mint, maxt)

    def label_values(
        self, name: str, matchers: Sequence[Matcher], mint: int, maxt: int
    ) -> list[str]:
        return self.inner.label_values(name, matchers, mint, maxt)

    def close(self) -> None:
        self.owner.closed += 1


def _store() -> Recording:
    mem = MemoryStorage()
    app = mem.appender()
    ts = np.arange(0, T + 1, 15_000, dtype=np.int64)
    for name in ("x", "y"):
        for job in ("a", "b"):
            app.append(Labels({"__name__": name, "job": job}), ts, np.arange(ts.size, dtype=float))
    app.commit()
    return Recording(mem)


def hints_of(query: str, *, step: int = 0) -> list[tuple[str, str, bool, tuple[str, ...], int]]:
    st = _store()
    if step:
        res = Engine().range_query(st, query, T - 600_000, T, step)
    else:
        res = Engine().instant_query(st, query, T)
    assert st.closed == len(st.hints)  # every querier was closed
    assert {f"from storage: {n}" for n, _ in st.hints} <= set(res.warnings)
    for _, h in st.hints:
        assert h.deadline is not None and h.step == step
    return [(n, h.func, h.by, h.grouping, h.range_ms) for n, h in st.hints]


def test_function_and_range_of_the_enclosing_call() -> None:
    assert hints_of("rate(x[5m])") == [("x", "rate", False, (), 300_000)]
    assert hints_of("sum by (job) (rate(x[5m]))") == [("x", "rate", False, (), 300_000)]


def test_grouping_only_right_under_the_aggregation() -> None:
    assert hints_of("sum by (job) (x)") == [("x", "sum", True, ("job",), 0)]
    assert hints_of("max without (job) (x)") == [("x", "max", False, ("job",), 0)]
    assert hints_of("sum((x))") == [("x", "sum", False, (), 0)]


def test_binary_operators_end_the_search() -> None:
    got = hints_of("sum(x + y)")
    assert sorted(got) == [("x", "", False, (), 0), ("y", "", False, (), 0)]
    assert hints_of("abs(-x)") == [("x", "abs", False, (), 0)]


def test_subqueries_and_range_queries() -> None:
    assert hints_of("max_over_time(x[10m:1m])") == [("x", "max_over_time", False, (), 0)]
    assert hints_of("rate(y[1m])", step=60_000) == [("y", "rate", False, (), 60_000)]
