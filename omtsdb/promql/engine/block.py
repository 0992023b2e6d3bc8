"""Values of the evaluator: everything is evaluated for all steps of the query at once.

- ``Block``: an instant vector over the step grid: labels per series, ``vals[nseries, nsteps]``
  and ``mask[nseries, nsteps]`` (present or not; NaN is a legitimate value, so presence is kept
  apart). ``drop_name`` marks series whose ``__name__`` is dropped on output.
- scalars are ``float64[nsteps]``; strings are ``str``; a range vector in an instant query is a
  list of ``SeriesData``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from omtsdb.errors import ExecutionError
from omtsdb.model.labels import Labels
from omtsdb.model.samples import F64

BoolArr = np.ndarray[tuple[int, ...], np.dtype[np.bool_]]


@dataclass(slots=True)
class Block:
    labels: list[Labels]
    vals: F64
    mask: BoolArr
    sort_order: list[int] | None = field(default=None)  # set by sort functions

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
        return Block([self.labels[i] for i in idx], self.vals[idx], self.mask[idx])

    def with_labels(self, labels: list[Labels]) -> Block:
        return Block(labels, self.vals, self.mask)

    def check_unique(self) -> Block:
        """Merge series that share a label set; two present at one step is an error."""
        seen: dict[Labels, int] = {}
        dup = False
        for i, lb in enumerate(self.labels):
            if lb in seen:
                dup = True
                break
            seen[lb] = i
        if not dup:
            return self
        groups: dict[Labels, list[int]] = {}
        for i, lb in enumerate(self.labels):
            groups.setdefault(lb, []).append(i)
        labels, vals, masks = [], [], []
        for lb, rows in groups.items():
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
        )
