"""Result values of the PromQL engine, as the HTTP API and the test runner consume them.

Times are int64 milliseconds. A range query always yields a ``Matrix``; an instant query yields
whichever type the expression has. ``Vector`` order is the engine's output order (meaningful for
``sort``/``sort_by_label``/``topk`` in instant queries); ``Matrix`` is sorted by labels.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Union

from omtsdb.model.labels import Labels
from omtsdb.storage.interface import SeriesData


@dataclass(frozen=True, slots=True)
class Scalar:
    t: int
    v: float


@dataclass(frozen=True, slots=True)
class String:
    t: int
    v: str


@dataclass(frozen=True, slots=True)
class Sample:
    """One element of an instant vector."""

    labels: Labels
    t: int
    v: float


Vector = list[Sample]
Matrix = list[SeriesData]
Value = Union[Scalar, String, Vector, Matrix]  # noqa: UP007


@dataclass(slots=True)
class QueryStats:
    """What ``stats=all`` reports (see Prometheus's ``stats.QueryStats``)."""

    total_queryable_samples: int = 0
    peak_samples: int = 0
    exec_total_time_s: float = 0.0
    exec_queue_time_s: float = 0.0
    inner_eval_time_s: float = 0.0
    query_preparation_time_s: float = 0.0
    result_sort_time_s: float = 0.0
    # for range queries: samples per step, (t_ms, count)
    total_queryable_samples_per_step: list[tuple[int, int]] = field(default_factory=list)


@dataclass(slots=True)
class Result:
    """An answer: the value plus the annotations Prometheus returns beside it."""

    value: Value
    warnings: list[str] = field(default_factory=list)
    infos: list[str] = field(default_factory=list)
    stats: QueryStats | None = None
