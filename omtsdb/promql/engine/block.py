"""Values of the evaluator: everything is evaluated for all steps of the query at once.

- ``Block``: an instant vector over the step grid: labels per series, ``vals[nseries, nsteps]``
  and ``mask[nseries, nsteps]`` (present or not; NaN is a legitimate value, so presence is kept
  apart). ``drop`` marks series whose ``__name__`` is to be dropped (Prometheus's delayed name
  removal: the name stays for label functions and ``by (__name__)`` until ``apply_drop``).
- scalars are ``float64[nsteps]``; strings are ``str``; a range vector in an instant query is a
  list of ``SeriesData``.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

import numpy as np

from omtsdb.errors import ExecutionError
from omtsdb.model.labels import METRIC_NAME, Labels
from omtsdb.model.samples import F64

BoolArr = np.ndarray[tuple[int, ...], np.dtype[np.bool_]]

# What "dropping the metric name" removes: the name and the type-and-unit metadata labels
# (Prometheus's schema.IsMetadataLabel).
METADATA_LABELS = (METRIC_NAME, "__type__", "__unit__")


# Label sets repeat from query to query (the same series): results of the per-series label
# work are remembered, up to MEMO_MAX entries (then forgotten all at once).
MEMO_MAX = 1 << 16

T = TypeVar("T")


class RowsMemo(Generic[T]):
    """Results of work on whole lists of label sets (groupings, matching plans), keyed by the
    identities of the label sets: blocks hand out the same ``Labels`` objects for the same
    series, so a repeated query finds its entry without hashing a label set. Each entry holds
    its label lists, so those identities stay theirs. Bounded; forgotten all at once."""

    def __init__(self, size: int = 256) -> None:
        self.size = size
        self._d: dict[tuple[Hashable, ...], tuple[T, list[Sequence[Labels]]]] = {}

    def get(
        self, rows: Sequence[Sequence[Labels]], extra: tuple[Hashable, ...], make: Callable[[], T]
    ) -> T:
        key = (*(tuple(map(id, r)) for r in rows), *extra)
        got = self._d.get(key)
        if got is None:
            if len(self._d) >= self.size:
                self._d.clear()
            got = self._d[key] = (make(), [list(r) for r in rows])
        return got[0]


_DROPPED: dict[Labels, Labels] = {}


def drop_metadata(lb: Labels) -> Labels:
    got = _DROPPED.get(lb)
    if got is None:
        names = lb.names()
        got = lb.without(*METADATA_LABELS) if any(n in names for n in METADATA_LABELS) else lb
        if len(_DROPPED) >= MEMO_MAX:
            _DROPPED.clear()
        _DROPPED[lb] = got
    return got


@dataclass(slots=True)
class Block:
    labels: list[Labels]
    vals: F64
    mask: BoolArr
    sort_order: list[int] | None = field(default=None)  # set by sort functions
    drop: BoolArr | None = field(default=None)  # per series: __name__ to be dropped

    @classmethod
    def empty(cls, nsteps: int) -> Block:
        return cls([], np.empty((0, nsteps)), np.zeros((0, nsteps), np.bool_))

    @property
    def nsteps(self) -> int:
        return int(self.vals.shape[1])

    def __len__(self) -> int:
        return len(self.labels)

    def compact(self) -> Block:
        """Drop series present at no step."""
        keep = self.mask.any(axis=1)
        if keep.all():
            return self
        idx = np.flatnonzero(keep)
        drop = self.drop[idx] if self.drop is not None else None
        return Block([self.labels[i] for i in idx], self.vals[idx], self.mask[idx], drop=drop)

    def with_labels(self, labels: list[Labels]) -> Block:
        return Block(labels, self.vals, self.mask, drop=self.drop)

    def mark_drop(self, rows: BoolArr | None = None) -> Block:
        """The same series, their names to be dropped (all of them, or where ``rows``)."""
        new = np.ones(len(self.labels), np.bool_) if rows is None else rows
        if self.drop is not None:
            new = new | self.drop
        return Block(self.labels, self.vals, self.mask, self.sort_order, new)

    def apply_drop(self) -> Block:
        """Drop the names marked for dropping; series that then coincide are merged (an error
        where both are present at one step)."""
        if self.drop is None or not self.drop.any():
            return self if self.drop is None else Block(self.labels, self.vals, self.mask)
        labels = [
            drop_metadata(lb) if d else lb
            for lb, d in zip(self.labels, self.drop.tolist(), strict=True)
        ]
        return Block(labels, self.vals, self.mask, self.sort_order).check_unique()

    def check_unique(self) -> Block:
        """Merge series that share a label set; two present at one step is an error."""
        if len(set(self.labels)) == len(self.labels):
            return self
        groups: dict[Labels, list[int]] = {}
        for i, lb in enumerate(self.labels):
            groups.setdefault(lb, []).append(i)
        labels, vals, masks, drops = [], [], [], []
        for lb, rows in groups.items():
            drops.append(self.drop is not None and bool(self.drop[rows].any()))
            if len(rows) == 1:
                r = rows[0]
                labels.append(lb)
                vals.append(self.vals[r])
                masks.append(self.mask[r])
                continue
            m = self.mask[rows]
            if (m.sum(axis=0) > 1).any():
                raise ExecutionError("vector cannot contain metrics with the same labelset")
            v = np.where(m, self.vals[rows], 0.0).sum(axis=0)
            labels.append(lb)
            vals.append(v)
            masks.append(m.any(axis=0))
        return Block(
            labels,
            np.array(vals).reshape(len(labels), -1),
            np.array(masks).reshape(len(labels), -1),
            drop=np.array(drops, np.bool_) if self.drop is not None else None,
        )
