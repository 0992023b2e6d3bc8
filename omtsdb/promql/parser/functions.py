"""Signatures of PromQL functions and aggregations (Prometheus 3.5; experimental ones flagged)."""

from __future__ import annotations

from dataclasses import dataclass

from omtsdb.promql.parser.ast import ValueType

S, V, M, STR = ValueType.SCALAR, ValueType.VECTOR, ValueType.MATRIX, ValueType.STRING


@dataclass(frozen=True, slots=True)
class Function:
    name: str
    arg_types: tuple[ValueType, ...]
    return_type: ValueType
    # Prometheus's Variadic: 0: exactly arg_types; otherwise the last arg is optional and
    # n > 0 more may follow it (at most len(arg_types) - 1 + n in all); -1: no upper limit.
    variadic: int = 0
    experimental: bool = False


def _f(
    name: str,
    args: tuple[ValueType, ...],
    ret: ValueType = V,
    variadic: int = 0,
    experimental: bool = False,
) -> tuple[str, Function]:
    return name, Function(name, args, ret, variadic, experimental)


_MATH = (
    "abs",
    "ceil",
    "exp",
    "floor",
    "ln",
    "log10",
    "log2",
    "sgn",
    "sqrt",
    "acos",
    "acosh",
    "asin",
    "asinh",
    "atan",
    "atanh",
    "cos",
    "cosh",
    "sin",
    "sinh",
    "tan",
    "tanh",
    "deg",
    "rad",
    "timestamp",
    "histogram_avg",
    "histogram_count",
    "histogram_sum",
    "histogram_stddev",
    "histogram_stdvar",
    "sort",
    "sort_desc",
    "absent",
)
_OVER_TIME = (
    "avg_over_time",
    "count_over_time",
    "last_over_time",
    "max_over_time",
    "min_over_time",
    "present_over_time",
    "stddev_over_time",
    "stdvar_over_time",
    "sum_over_time",
    "absent_over_time",
    "changes",
    "delta",
    "deriv",
    "idelta",
    "increase",
    "irate",
    "rate",
    "resets",
)
_OVER_TIME_EXP = (
    "mad_over_time",
    "first_over_time",
    "ts_of_min_over_time",
    "ts_of_max_over_time",
    "ts_of_last_over_time",
    "ts_of_first_over_time",
)
_DATE = (
    "day_of_month",
    "day_of_week",
    "day_of_year",
    "days_in_month",
    "hour",
    "minute",
    "month",
    "year",
)

FUNCTIONS: dict[str, Function] = dict(
    [
        *(_f(n, (V,)) for n in _MATH),
        *(_f(n, (M,)) for n in _OVER_TIME),
        *(_f(n, (M,), experimental=True) for n in _OVER_TIME_EXP),
        *(_f(n, (V,), variadic=1) for n in _DATE),
        _f("clamp", (V, S, S)),
        _f("clamp_max", (V, S)),
        _f("clamp_min", (V, S)),
        _f("round", (V, S), variadic=1),
        _f("histogram_quantile", (S, V)),
        _f("histogram_fraction", (S, S, V)),
        _f("histogram_quantiles", (V, STR, S, S), variadic=9, experimental=True),
        _f("label_replace", (V, STR, STR, STR, STR)),
        _f("label_join", (V, STR, STR, STR), variadic=-1),
        _f("predict_linear", (M, S)),
        _f("quantile_over_time", (S, M)),
        _f("double_exponential_smoothing", (M, S, S), experimental=True),
        _f("holt_winters", (M, S, S), experimental=True),
        _f("sort_by_label", (V, STR), variadic=-1, experimental=True),
        _f("sort_by_label_desc", (V, STR), variadic=-1, experimental=True),
        _f("scalar", (V,), S),
        _f("vector", (S,), V),
        _f("time", (), S),
        _f("pi", (), S),
        *(_f(n, (), S, experimental=True) for n in ("start", "end", "range", "step")),
        _f("min_of", (S, S), S, experimental=True),
        _f("max_of", (S, S), S, experimental=True),
        _f("info", (V, V), variadic=1, experimental=True),
        _f("start_timestamp", (V,), experimental=True),  # Prometheus 3.14
    ]
)
# holt_winters was renamed in Prometheus 3; it is not available there.
del FUNCTIONS["holt_winters"]

AGGREGATIONS: dict[str, ValueType | None] = {
    "sum": None,
    "avg": None,
    "count": None,
    "min": None,
    "max": None,
    "group": None,
    "stddev": None,
    "stdvar": None,
    "topk": S,
    "bottomk": S,
    "quantile": S,
    "count_values": STR,
    "limitk": S,
    "limit_ratio": S,
}
EXPERIMENTAL_AGGREGATIONS = frozenset({"limitk", "limit_ratio"})
