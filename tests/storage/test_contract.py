"""The storage contract (``omtsdb.storage.interface``), run over every implementation.

Every store gets the same data through the ``Appender`` protocol and must answer the same
selects, label queries and hints exactly as a reference computed from the raw data: samples
in the inclusive range, bit-exact values (staleness markers included), start timestamps as
stored, series sorted by labels. To add an implementation (the PostgreSQL tier), add a
factory to ``STORES``: a function of a temporary directory returning a ``Loaded`` store.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from omtsdb.errors import BadDataError, QueryTimeoutError
from omtsdb.model.labels import Labels
from omtsdb.model.matchers import Matcher, MatchType
from omtsdb.model.samples import STALE_NAN, STALE_NAN_BITS
from omtsdb.storage.fanout import FanoutStorage
from omtsdb.storage.interface import (
    SERIES_FUNC,
    Appendable,
    Querier,
    Queryable,
    SelectHints,
    SeriesData,
)
from omtsdb.storage.memory import MemoryStorage
from omtsdb.tsdb.db import DB, DBOptions

HOUR = 3_600_000
T0 = 1_700_000_000_000 // HOUR * HOUR  # an hour boundary, so that blocks cut predictably
END = T0 + 7 * HOUR


@dataclass(frozen=True)
class Raw:
    labels: Labels
    ts: np.ndarray
    vs: np.ndarray
    st: np.ndarray | None = None


def _data() -> list[Raw]:
    """Series over 7 h: steady 15 s counters on two jobs, one with start timestamps, a
    gauge with a gap and staleness markers, a sparse series, one that ends early."""
    out: list[Raw] = []
    ts = np.arange(T0, END, 15_000, dtype=np.int64)
    for job in ("api", "db"):
        for inst in ("a:1", "b:2", "c:3"):
            lb = Labels({"__name__": "reqs_total", "job": job, "instance": inst})
            vs = np.cumsum(np.full(ts.size, 2.0)) + (7.0 if inst == "b:2" else 0.0)
            st = None
            if job == "api" and inst == "a:1":
                st = np.where(ts < T0 + 3 * HOUR, T0 - 1000, T0 + 3 * HOUR).astype(np.int64)
            out.append(Raw(lb, ts, vs, st))
    gauge_ts = ts[(ts < T0 + 2 * HOUR) | (ts >= T0 + 4 * HOUR)]
    gauge_vs = np.sin(gauge_ts / 1e6)
    gauge_vs[100] = STALE_NAN
    gauge_vs[-1] = STALE_NAN
    out.append(Raw(Labels({"__name__": "temp", "job": "db", "zone": "z1"}), gauge_ts, gauge_vs))
    sparse = np.array([T0 + 5, T0 + HOUR + 1, T0 + 6 * HOUR + 59_999], np.int64)
    out.append(Raw(Labels({"__name__": "up", "job": "db", "k": ""}), sparse, np.ones(3)))
    early = ts[ts < T0 + HOUR]
    out.append(
        Raw(Labels({"__name__": "gone", "job": "api"}), early, np.arange(early.size, dtype=float))
    )
    return out


DATA = _data()


def _append(store: Appendable, rows: list[Raw]) -> None:
    app = store.appender()
    for r in rows:
        app.append(r.labels, r.ts, r.vs, r.st)
    app.commit()


@dataclass
class Loaded:
    store: Queryable
    close: Callable[[], None] = lambda: None


def memory(_: Path) -> Loaded:
    m = MemoryStorage()
    _append(m, DATA)
    return Loaded(m)


def db_head(_: Path) -> Loaded:
    db = DB.open(None)
    _append(db, DATA)
    return Loaded(db, db.close)


def db_blocks(tmp: Path) -> Loaded:
    """On disk: the first hours cut into blocks, the rest in the head (a merge querier)."""
    db = DB.open(tmp / "db", DBOptions(fsync=False))
    _append(db, DATA)
    db.wait_for_compaction()
    assert db.blocks, "the head was expected to be cut into blocks"
    return Loaded(db, db.close)


def fanout(_: Path) -> Loaded:
    """Half of the series in the primary, the rest and an overlapping copy in a secondary."""
    primary, secondary = MemoryStorage(), MemoryStorage()
    _append(primary, DATA[::2])
    _append(secondary, DATA[1::2])
    _append(secondary, DATA[:1])  # the same series in both: merged, no duplicate samples
    return Loaded(FanoutStorage(primary, {"second": secondary}))


STORES: dict[str, Callable[[Path], Loaded]] = {
    "memory": memory,
    "db-head": db_head,
    "db-blocks": db_blocks,
    "fanout": fanout,
}


@pytest.fixture(params=sorted(STORES))
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Queryable]:
    loaded = STORES[request.param](tmp_path)
    try:
        yield loaded.store
    finally:
        loaded.close()


def m(kind: MatchType, name: str, value: str) -> Matcher:
    return Matcher(kind, name, value)


SELECTORS = [
    [m(MatchType.EQ, "__name__", "reqs_total")],
    [m(MatchType.EQ, "__name__", "reqs_total"), m(MatchType.NEQ, "instance", "b:2")],
    [m(MatchType.RE, "job", "db|api"), m(MatchType.NRE, "__name__", "reqs.*")],
    [m(MatchType.RE, "__name__", ".+"), m(MatchType.EQ, "k", "")],  # k="" matches a missing k
    [m(MatchType.EQ, "__name__", "nothing")],
]
RANGES = [
    (T0, END),
    (T0 - HOUR, T0 + 5),  # ends on the first samples
    (T0 + HOUR + 1, T0 + HOUR + 1),  # one instant: only what sits exactly there
    (T0 + 2 * HOUR, T0 + 4 * HOUR - 1),  # the gauge's gap
    (T0 + 90 * 60_000, T0 + 5 * HOUR),  # across block boundaries
    (END + HOUR, END + 2 * HOUR),  # after everything
]


def reference(ms: list[Matcher], mint: int, maxt: int) -> list[SeriesData]:
    out = []
    for r in DATA:
        if not all(x.matches(r.labels.get(x.name)) for x in ms):
            continue
        keep = (r.ts >= mint) & (r.ts <= maxt)
        if keep.any():
            st = r.st[keep] if r.st is not None and r.st[keep].any() else None
            out.append(SeriesData(r.labels, r.ts[keep], r.vs[keep], st))
    out.sort(key=lambda s: s.labels.sort_key())
    return out


def same(got: list[SeriesData], want: list[SeriesData]) -> None:
    assert [s.labels for s in got] == [s.labels for s in want]
    for g, w in zip(got, want, strict=True):
        assert g.ts.tolist() == w.ts.tolist(), g.labels
        assert g.vs.view(np.uint64).tolist() == w.vs.view(np.uint64).tolist(), g.labels
        g_st = None if g.st is None or not g.st.any() else g.st.tolist()
        w_st = None if w.st is None else w.st.tolist()
        assert g_st == w_st, g.labels


def test_selects_equal_the_reference(store: Queryable) -> None:
    for ms in SELECTORS:
        for mint, maxt in RANGES:
            with store.querier(mint, maxt) as q:
                assert isinstance(q, Querier)
                want = reference(ms, mint, maxt)
                same(q.select(ms, mint, maxt), want)
                batch = q.select_batch(ms, mint, maxt)
                same(batch.series(), want)
                assert batch.warnings == ()
                assert q.warnings() == []


def test_hints_that_change_nothing_change_nothing(store: Queryable) -> None:
    ms = SELECTORS[0]
    hints = SelectHints(T0, END, 60_000, "rate", ("job",), True, 300_000)
    with store.querier(T0, END) as q:
        same(q.select_batch(ms, T0, END, hints).series(), reference(ms, T0, END))


def test_staleness_markers_are_kept_bit_exact(store: Queryable) -> None:
    ms = [m(MatchType.EQ, "__name__", "temp")]
    with store.querier(T0, END) as q:
        (s,) = q.select(ms, T0, END)
    bits = s.vs.view(np.uint64)
    assert int(bits[100]) == STALE_NAN_BITS and int(bits[-1]) == STALE_NAN_BITS
    assert int(np.count_nonzero(bits == np.uint64(STALE_NAN_BITS))) == 2


def test_start_timestamps_as_stored(store: Queryable) -> None:
    ms = [m(MatchType.EQ, "job", "api"), m(MatchType.EQ, "instance", "a:1")]
    with store.querier(T0, END) as q:
        (s,) = q.select(ms, T0, END)
        assert s.st is not None
        assert set(s.st.tolist()) == {T0 - 1000, T0 + 3 * HOUR}
        others = q.select([m(MatchType.EQ, "instance", "c:3")], T0, END)
        assert all(o.st is None or not o.st.any() for o in others)


def test_series_hint_lists_the_same_series_without_decoding(store: Queryable) -> None:
    """``func="series"``: every series the full select returns, each without samples; a
    series may also be listed when its data only spans the range (chunk overlap, as in
    Prometheus), never one without data around the range."""
    for ms in SELECTORS:
        for mint, maxt in RANGES:
            with store.querier(mint, maxt) as q:
                got = q.select_batch(ms, mint, maxt, SelectHints(mint, maxt, func=SERIES_FUNC))
            full = {s.labels for s in reference(ms, mint, maxt)}
            spanning = {
                r.labels
                for r in DATA
                if all(x.matches(r.labels.get(x.name)) for x in ms)
                and r.ts[0] <= maxt
                and r.ts[-1] >= mint
            }
            assert full <= set(got.labels) <= spanning
            assert got.labels == sorted(got.labels, key=lambda lb: lb.sort_key())
            assert got.ts.size == 0 or sum(len(s) for s in got.series()) == got.ts.size


def test_limit_keeps_the_first_series_in_label_order(store: Queryable) -> None:
    ms = [m(MatchType.RE, "__name__", ".+")]
    want = reference(ms, T0, END)
    for limit in (1, 3, len(want), len(want) + 5):
        with store.querier(T0, END) as q:
            same(q.select(ms, T0, END, SelectHints(T0, END, limit=limit)), want[:limit])
            listed = q.select_batch(ms, T0, END, SelectHints(T0, END, func="series", limit=limit))
        assert listed.labels == [s.labels for s in want[:limit]]


def test_a_passed_deadline_stops_the_select(store: Queryable) -> None:
    ms = [m(MatchType.RE, "__name__", ".+")]
    late = SelectHints(T0, END, deadline=time.monotonic() - 1)
    with store.querier(T0, END) as q, pytest.raises(QueryTimeoutError):
        q.select_batch(ms, T0, END, late)


def test_matchers_that_all_match_empty_are_refused(store: Queryable) -> None:
    with store.querier(T0, END) as q:
        for ms in ([], [m(MatchType.EQ, "k", "")], [m(MatchType.RE, "job", ".*")]):
            with pytest.raises(BadDataError):
                q.select(ms, T0, END)


def test_label_names_and_values(store: Queryable) -> None:
    def names(ms: list[Matcher], mint: int, maxt: int) -> list[str]:
        found = {
            n
            for s in reference(ms or [m(MatchType.RE, "__name__", ".+")], mint, maxt)
            for n in s.labels.names()
        }
        return sorted(found)

    def values(name: str, ms: list[Matcher], mint: int, maxt: int) -> list[str]:
        refs = reference(ms or [m(MatchType.RE, "__name__", ".+")], mint, maxt)
        return sorted({s.labels.get(name) for s in refs} - {""})

    with store.querier(T0, END) as q:
        assert q.label_names([], T0, END) == names([], T0, END)
        assert q.label_values("job", [], T0, END) == ["api", "db"]
        assert q.label_values("__name__", [], T0, END) == values("__name__", [], T0, END)
        temp = [m(MatchType.EQ, "__name__", "temp")]
        assert q.label_names(temp, T0, END) == ["__name__", "job", "zone"]
        assert q.label_values("instance", SELECTORS[1], T0, END) == ["a:1", "c:3"]
        assert q.label_values("zone", SELECTORS[0], T0, END) == []
        assert q.warnings() == []


def test_querier_is_a_context_manager_and_closes(store: Queryable) -> None:
    q = store.querier(T0, END)
    with q as entered:
        assert entered is q
    with contextlib.suppress(Exception):
        q.close()  # closing twice is harmless


class _Broken:
    """A secondary whose every call fails (a PostgreSQL tier that is down)."""

    def querier(self, mint: int, maxt: int) -> Querier:
        return self  # type: ignore[return-value]

    def __enter__(self) -> _Broken:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def close(self) -> None:
        pass

    def warnings(self) -> list[str]:
        return []

    def select_batch(self, *a: object, **k: object) -> None:
        raise ConnectionError("connection refused")

    label_names = label_values = select_batch


def test_a_failing_secondary_is_a_warning_not_an_error(tmp_path: Path) -> None:
    primary = STORES["db-head"](tmp_path)
    try:
        fan = FanoutStorage(primary.store, {"pg": _Broken()})  # type: ignore[dict-item]
        ms = SELECTORS[0]
        with fan.querier(T0, END) as q:
            batch = q.select_batch(ms, T0, END)
            same(batch.series(), reference(ms, T0, END))
            want = "secondary storage 'pg' failed: connection refused"
            assert batch.warnings == (want,)
            assert q.label_values("job", [], T0, END) == ["api", "db"]
            assert q.warnings() == [want]
    finally:
        primary.close()


def test_a_failing_primary_fails_the_select() -> None:
    fan = FanoutStorage(_Broken(), {"mem": MemoryStorage()})  # type: ignore[arg-type]
    with fan.querier(T0, END) as q, pytest.raises(ConnectionError):
        q.select_batch(SELECTORS[0], T0, END)
