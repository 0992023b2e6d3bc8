"""In-memory postings index: label pair -> sorted series ids.

Series ids are handed out in increasing order, so appending an id to a postings list keeps it
sorted. Lists grow as Python ``array('q')`` (8 bytes an id) and are turned into numpy views on
query. Selectors intersect postings; they never scan all series.
"""

from __future__ import annotations

import sys
import threading
from array import array
from collections.abc import Iterable, Sequence
from typing import Protocol

import numpy as np
import numpy.typing as npt

from omtsdb.model.labels import Labels
from omtsdb.model.matchers import Matcher, MatchType

IDS = npt.NDArray[np.int64]
_EMPTY: IDS = np.empty(0, np.int64)


def _as_ids(a: array[int]) -> IDS:
    if not a:
        return _EMPTY
    return np.frombuffer(a, dtype=np.int64)


def union_sorted(parts: Sequence[IDS]) -> IDS:
    if not parts:
        return _EMPTY
    if len(parts) == 1:
        return parts[0]
    return np.unique(np.concatenate(parts))


def intersect_sorted(a: IDS, b: IDS) -> IDS:
    return np.intersect1d(a, b, assume_unique=True)


class MemPostings:
    """Postings for the head. Thread-safe for one writer and many readers."""

    def __init__(self) -> None:
        self._p: dict[str, dict[str, array[int]]] = {}
        self._all: array[int] = array("q")
        self._lock = threading.Lock()

    def add(self, sid: int, labels: Labels) -> None:
        """Index a new series; ``sid`` must exceed every id added before."""
        with self._lock:
            self._all.append(sid)
            for n, v in labels:
                vals = self._p.get(n)
                if vals is None:
                    vals = self._p[sys.intern(n)] = {}
                lst = vals.get(v)
                if lst is None:
                    lst = vals[sys.intern(v)] = array("q")
                lst.append(sid)

    def rebuild(self, items: Iterable[tuple[int, Labels]]) -> None:
        """Replace the index with ``items`` (ascending ids), e.g. after garbage collection."""
        fresh = MemPostings()
        for sid, lb in items:
            fresh.add(sid, lb)
        with self._lock:
            self._p, self._all = fresh._p, fresh._all

    def all_ids(self) -> IDS:
        with self._lock:
            return _as_ids(self._all).copy()

    def get(self, name: str, value: str) -> IDS:
        with self._lock:
            lst = self._p.get(name, {}).get(value)
            return _as_ids(lst).copy() if lst is not None else _EMPTY

    def label_names(self) -> list[str]:
        with self._lock:
            return sorted(self._p)

    def label_values(self, name: str) -> list[str]:
        with self._lock:
            return sorted(self._p.get(name, {}))

    def cardinality(self) -> dict[str, dict[str, int]]:
        """Series count of every label pair: ``{name: {value: count}}``."""
        with self._lock:
            return {n: {v: len(ids) for v, ids in vals.items()} for n, vals in self._p.items()}

    def _values_matching(self, m: Matcher, want: bool) -> IDS:
        """Union of postings of ``m.name`` values for which ``m.matches(v) == want``."""
        with self._lock:
            vals = self._p.get(m.name)
            if not vals:
                return _EMPTY
            if m.type is MatchType.EQ and want:
                lst = vals.get(m.value)
                return _as_ids(lst).copy() if lst is not None else _EMPTY
            if m.type is MatchType.NEQ and not want:
                lst = vals.get(m.value)
                return _as_ids(lst).copy() if lst is not None else _EMPTY
            items = list(vals.items())
        parts = [_as_ids(lst) for v, lst in items if m.matches(v) == want]
        return union_sorted(parts).copy()

    def values_matching(self, m: Matcher, want: bool) -> IDS:
        return self._values_matching(m, want)

    def postings_for_matchers(self, matchers: Sequence[Matcher]) -> IDS:
        return postings_for_matchers(self, matchers)


class PostingsSource(Protocol):
    """What :func:`postings_for_matchers` needs of an index (head or block)."""

    def all_ids(self) -> IDS: ...

    def values_matching(self, m: Matcher, want: bool) -> IDS:
        """Union of postings of ``m.name`` values ``v`` with ``m.matches(v) == want``."""
        ...


def postings_for_matchers(src: PostingsSource, matchers: Sequence[Matcher]) -> IDS:
    """Sorted ids of the series matching every matcher (empty values match absent labels).

    With no matcher that rejects the empty string, the result starts from all series."""
    pos = [m for m in matchers if not m.matches_empty]
    neg = [m for m in matchers if m.matches_empty]
    # Most selective first: equality matchers are cheap and usually small.
    pos.sort(key=lambda m: 0 if m.type is MatchType.EQ else 1)
    ids: IDS | None = None
    for m in pos:
        got = src.values_matching(m, True)
        ids = got if ids is None else intersect_sorted(ids, got)
        if ids.size == 0:
            return _EMPTY
    if ids is None:
        ids = src.all_ids()
    for m in neg:
        # Series with a value for the label that the matcher rejects are dropped; series
        # lacking the label (empty value) match.
        if m.type is MatchType.NRE and m.value == ".*":
            continue
        bad = src.values_matching(m, False)
        if bad.size:
            ids = np.setdiff1d(ids, bad, assume_unique=True)
    return ids
