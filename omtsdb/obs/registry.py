"""A small, thread-safe metrics registry and the text exposition format 0.0.4.

Metric kinds: :class:`Counter`, :class:`Gauge`, :class:`Histogram` and :class:`Summary`, each
optionally with label names (``metric.labels("a", "b")`` returns the child for those values).
Values computed at scrape time come from *collectors*: callables returning :class:`Family`
objects, which ``/metrics`` calls beside the registry (``api.instrument``).

The exposition follows what Prometheus's Go client writes: families sorted by name, ``# HELP``
then ``# TYPE``, label pairs in label-name order (``le``/``quantile`` last), values as Go's
``strconv.FormatFloat(v, 'g', -1, 64)``.
"""

from __future__ import annotations

import bisect
import math
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from omtsdb.model.exposition.floats import format_go_g
from omtsdb.model.exposition.writer import escape_help, escape_value
from omtsdb.model.labels import is_legacy_label_name, is_legacy_metric_name

LabelPairs = tuple[tuple[str, str], ...]
DEFAULT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
DEFAULT_OBJECTIVES = (0.5, 0.9, 0.99)
C = TypeVar("C")


@dataclass(slots=True)
class Family:
    """One metric family as collected: samples are (suffix, label pairs, value)."""

    name: str
    help: str
    type: str  # counter, gauge, histogram, summary, untyped
    samples: list[tuple[str, LabelPairs, float]] = field(default_factory=list)

    def add(self, value: float, labels: LabelPairs = (), suffix: str = "") -> None:
        self.samples.append((suffix, labels, float(value)))


def format_value(v: float) -> str:
    """A sample value as the Go client writes it (``0`` also for negative zero)."""
    if v == 0:
        return "0"
    return format_go_g(v)


def _labels_text(pairs: LabelPairs) -> str:
    if not pairs:
        return ""
    return "{" + ",".join(f'{n}="{escape_value(v)}"' for n, v in pairs) + "}"


def render_text(families: Iterable[Family]) -> bytes:
    """Families (merged by name, sorted) in text format 0.0.4; empty families are left out."""
    by_name: dict[str, Family] = {}
    for f in families:
        if not f.samples:
            continue
        have = by_name.get(f.name)
        if have is None:
            by_name[f.name] = Family(f.name, f.help, f.type, list(f.samples))
        else:
            have.samples.extend(f.samples)
    out: list[str] = []
    for name in sorted(by_name):
        f = by_name[name]
        out.append(f"# HELP {name} {escape_help(f.help)}\n# TYPE {name} {f.type}\n")
        for suffix, pairs, v in f.samples:
            out.append(f"{name}{suffix}{_labels_text(pairs)} {format_value(v)}\n")
    return "".join(out).encode()


def _check_name(name: str, labelnames: Sequence[str]) -> None:
    if not is_legacy_metric_name(name):
        raise ValueError(f"invalid metric name {name!r}")
    for ln in labelnames:
        if not is_legacy_label_name(ln) or ln.startswith("__") or ln in ("le", "quantile"):
            raise ValueError(f"invalid label name {ln!r} for {name}")


class _Metric(Generic[C]):
    """Shared label handling: one child per tuple of label values."""

    kind = ""

    def __init__(
        self,
        name: str,
        help_text: str,
        labelnames: Sequence[str] = (),
        registry: Registry | None = None,
    ) -> None:
        _check_name(name, labelnames)
        self.name = name
        self.help = help_text
        self.labelnames = tuple(labelnames)
        self._children: dict[tuple[str, ...], C] = {}
        self._lock = threading.Lock()
        if not self.labelnames:
            self._children[()] = self._new_child()
        (registry if registry is not None else REGISTRY).register(self)

    def _new_child(self) -> C:
        raise NotImplementedError

    def labels(self, *values: str) -> C:
        child = self._children.get(values)
        if child is not None:
            return child
        if len(values) != len(self.labelnames):
            raise ValueError(f"{self.name}: expected {len(self.labelnames)} label values")
        with self._lock:
            return self._children.setdefault(values, self._new_child())

    def _default(self) -> C:
        if self.labelnames:
            raise ValueError(f"{self.name} has labels: use .labels(...)")
        return self._children[()]

    def _items(self) -> list[tuple[LabelPairs, C]]:
        with self._lock:
            items = sorted(self._children.items())
        return [(tuple(zip(self.labelnames, k, strict=True)), c) for k, c in items]

    def collect(self) -> Family:
        fam = Family(self.name, self.help, self.kind)
        for pairs, child in self._items():
            self._samples(fam, pairs, child)
        return fam

    def _samples(self, fam: Family, pairs: LabelPairs, child: C) -> None:
        raise NotImplementedError


class _Value:
    __slots__ = ("_lock", "value")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.value = 0.0

    def inc(self, amount: float = 1.0) -> None:
        with self._lock:
            self.value += amount

    def dec(self, amount: float = 1.0) -> None:
        with self._lock:
            self.value -= amount

    def set(self, value: float) -> None:
        self.value = float(value)


class Counter(_Metric[_Value]):
    kind = "counter"

    def _new_child(self) -> _Value:
        return _Value()

    def inc(self, amount: float = 1.0) -> None:
        if amount < 0:
            raise ValueError("counters only go up")
        self._default().inc(amount)

    def _samples(self, fam: Family, pairs: LabelPairs, child: _Value) -> None:
        fam.add(child.value, pairs)


class Gauge(_Metric[_Value]):
    kind = "gauge"

    def _new_child(self) -> _Value:
        return _Value()

    def set(self, value: float) -> None:
        self._default().set(value)

    def inc(self, amount: float = 1.0) -> None:
        self._default().inc(amount)

    def dec(self, amount: float = 1.0) -> None:
        self._default().dec(amount)

    def _samples(self, fam: Family, pairs: LabelPairs, child: _Value) -> None:
        fam.add(child.value, pairs)


class _HistogramChild:
    __slots__ = ("_lock", "bounds", "count", "counts", "sum")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self._lock = threading.Lock()
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)  # per bucket, not cumulative; last is +Inf
        self.sum = 0.0
        self.count = 0

    def observe(self, v: float) -> None:
        i = bisect.bisect_left(self.bounds, v)  # first bound >= v: buckets are le
        with self._lock:
            self.counts[i] += 1
            self.sum += v
            self.count += 1


class Histogram(_Metric[_HistogramChild]):
    kind = "histogram"

    def __init__(
        self,
        name: str,
        help_text: str,
        labelnames: Sequence[str] = (),
        buckets: Sequence[float] = DEFAULT_BUCKETS,
        registry: Registry | None = None,
    ) -> None:
        bs = tuple(sorted(float(b) for b in buckets if not math.isinf(b)))
        if not bs:
            raise ValueError("a histogram needs at least one finite bucket")
        self.buckets = bs
        super().__init__(name, help_text, labelnames, registry)

    def _new_child(self) -> _HistogramChild:
        return _HistogramChild(self.buckets)

    def observe(self, v: float) -> None:
        self._default().observe(v)

    def _samples(self, fam: Family, pairs: LabelPairs, child: _HistogramChild) -> None:
        with child._lock:
            counts, total, n = list(child.counts), child.sum, child.count
        acc = 0
        for b, c in zip((*child.bounds, math.inf), counts, strict=True):
            acc += c
            fam.add(acc, (*pairs, ("le", format_value(b) if b != math.inf else "+Inf")), "_bucket")
        fam.add(total, pairs, "_sum")
        fam.add(n, pairs, "_count")


class _SummaryChild:
    """Sum and count since start; quantiles over the observations of the last ``max_age``
    seconds (at most ``max_kept`` of them, the newest)."""

    __slots__ = ("_lock", "count", "max_age", "recent", "sum")

    def __init__(self, max_age: float, max_kept: int) -> None:
        self._lock = threading.Lock()
        self.recent: deque[tuple[float, float]] = deque(maxlen=max_kept)
        self.max_age = max_age
        self.sum = 0.0
        self.count = 0

    def observe(self, v: float) -> None:
        now = time.monotonic()
        with self._lock:
            self.recent.append((now, v))
            self.sum += v
            self.count += 1

    def snapshot(self) -> tuple[list[float], float, int]:
        cutoff = time.monotonic() - self.max_age
        with self._lock:
            while self.recent and self.recent[0][0] < cutoff:
                self.recent.popleft()
            vals = sorted(v for _, v in self.recent)
            return vals, self.sum, self.count


def quantile(sorted_vals: list[float], q: float) -> float:
    """Nearest-rank quantile of sorted values (NaN when there are none)."""
    if not sorted_vals:
        return math.nan
    i = max(0, min(len(sorted_vals) - 1, math.ceil(q * len(sorted_vals)) - 1))
    return sorted_vals[i]


class Summary(_Metric[_SummaryChild]):
    kind = "summary"

    def __init__(
        self,
        name: str,
        help_text: str,
        labelnames: Sequence[str] = (),
        objectives: Sequence[float] = DEFAULT_OBJECTIVES,
        max_age_s: float = 600.0,
        max_kept: int = 1024,
        registry: Registry | None = None,
    ) -> None:
        self.objectives = tuple(objectives)
        self.max_age = max_age_s
        self.max_kept = max_kept
        super().__init__(name, help_text, labelnames, registry)

    def _new_child(self) -> _SummaryChild:
        return _SummaryChild(self.max_age, self.max_kept)

    def observe(self, v: float) -> None:
        self._default().observe(v)

    def _samples(self, fam: Family, pairs: LabelPairs, child: _SummaryChild) -> None:
        vals, total, n = child.snapshot()
        for q in self.objectives:
            fam.add(quantile(vals, q), (*pairs, ("quantile", format_value(q))))
        fam.add(total, pairs, "_sum")
        fam.add(n, pairs, "_count")


Collector = Callable[[], Iterable[Family]]


class Registry:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._metrics: dict[str, _Metric[Any]] = {}

    def register(self, metric: _Metric[Any]) -> None:
        with self._lock:
            if metric.name in self._metrics:
                raise ValueError(f"metric {metric.name} registered twice")
            self._metrics[metric.name] = metric

    def collect(self) -> list[Family]:
        with self._lock:
            metrics = list(self._metrics.values())
        return [m.collect() for m in metrics]


REGISTRY = Registry()
