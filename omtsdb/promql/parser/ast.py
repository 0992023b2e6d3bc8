"""The PromQL AST: frozen, slotted dataclasses with tuples for children.

Positions (``pos``) are excluded from equality so that ``parse(print(ast)) == ast``. Times and
durations are integer milliseconds. Runtime state never lives here: the engine keeps its plan in
separate structures keyed by node identity.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Union

from omtsdb.model.matchers import Matcher


@dataclass(frozen=True, slots=True)
class PosRange:
    """Half-open character offsets ``[start, end)`` into the query text."""

    start: int = 0
    end: int = 0


NOPOS = PosRange()


class ValueType(enum.Enum):
    NONE = "none"
    SCALAR = "scalar"
    VECTOR = "vector"
    MATRIX = "matrix"
    STRING = "string"

    def __str__(self) -> str:  # the spelling Prometheus uses in messages
        return {
            ValueType.SCALAR: "scalar",
            ValueType.VECTOR: "instant vector",
            ValueType.MATRIX: "range vector",
            ValueType.STRING: "string",
            ValueType.NONE: "none",
        }[self]


class AtModifier(enum.Enum):
    """``@ start()`` / ``@ end()``; a fixed ``@ <ts>`` uses ``at_ms`` instead."""

    START = "start"
    END = "end"


@dataclass(frozen=True, slots=True)
class NumberLiteral:
    value: float
    pos: PosRange = field(default=NOPOS, compare=False)


@dataclass(frozen=True, slots=True)
class StringLiteral:
    value: str
    pos: PosRange = field(default=NOPOS, compare=False)


@dataclass(frozen=True, slots=True)
class DurationExpr:
    """A duration expression (Prometheus's experimental ``promql-duration-expr``), in seconds.

    ``op`` is ``num`` (a literal: ``value``; ``duration`` when written with units), a binary
    operator ``+ - * / % ^`` (``lhs``/``rhs``; unary ``+``/``-`` have no ``lhs``), ``step``,
    ``range``, ``min_of`` or ``max_of``. ``wrapped`` records parentheses, for printing."""

    op: str
    lhs: DurationExpr | None = None
    rhs: DurationExpr | None = None
    value: float = 0.0
    duration: bool = False
    wrapped: bool = False
    pos: PosRange = field(default=NOPOS, compare=False)


@dataclass(frozen=True, slots=True)
class VectorSelector:
    """``name{matchers} offset D @ T``. ``matchers`` includes ``__name__="name"`` when the
    name is written outside the braces (as Prometheus does); ``name`` is that name or ``""``."""

    name: str
    matchers: tuple[Matcher, ...]
    offset_ms: int = 0
    at_ms: int | None = None
    at_modifier: AtModifier | None = None
    # Experimental (Prometheus 3.x feature flags): 'anchored' / 'smoothed' range semantics.
    anchored: bool = False
    smoothed: bool = False
    # Experimental duration expression for the offset; ``offset_ms`` holds its value when it is
    # constant, the engine resolves it otherwise (see ``parser.durexpr``).
    offset_expr: DurationExpr | None = None
    pos: PosRange = field(default=NOPOS, compare=False)


@dataclass(frozen=True, slots=True)
class MatrixSelector:
    vector_selector: VectorSelector
    range_ms: int
    range_expr: DurationExpr | None = None  # experimental duration expression, see VectorSelector
    pos: PosRange = field(default=NOPOS, compare=False)


@dataclass(frozen=True, slots=True)
class SubqueryExpr:
    """``expr[range:step]``; ``step_ms == 0`` means the engine's default evaluation interval."""

    expr: Expr
    range_ms: int
    step_ms: int = 0
    offset_ms: int = 0
    at_ms: int | None = None
    at_modifier: AtModifier | None = None
    range_expr: DurationExpr | None = None
    step_expr: DurationExpr | None = None
    offset_expr: DurationExpr | None = None
    pos: PosRange = field(default=NOPOS, compare=False)


@dataclass(frozen=True, slots=True)
class Call:
    func: str
    args: tuple[Expr, ...]
    pos: PosRange = field(default=NOPOS, compare=False)


@dataclass(frozen=True, slots=True)
class AggregateExpr:
    """``op [by|without (grouping)] ([param,] expr)``."""

    op: str
    expr: Expr
    param: Expr | None = None
    grouping: tuple[str, ...] = ()
    without: bool = False
    # True when ``by (...)`` was written (even empty), to print it back as written.
    by: bool = False
    pos: PosRange = field(default=NOPOS, compare=False)


class Cardinality(enum.Enum):
    ONE_TO_ONE = "one-to-one"
    MANY_TO_ONE = "many-to-one"
    ONE_TO_MANY = "one-to-many"
    MANY_TO_MANY = "many-to-many"


@dataclass(frozen=True, slots=True)
class VectorMatching:
    """Vector matching of a binary expression between two instant vectors.

    ``on`` with ``matching_labels`` is ``on(...)``; otherwise ``ignoring(...)``. ``include``
    holds the ``group_left(...)``/``group_right(...)`` labels. ``fill_left``/``fill_right``
    are the experimental fill modifiers' values (None when absent)."""

    card: Cardinality = Cardinality.ONE_TO_ONE
    matching_labels: tuple[str, ...] = ()
    on: bool = False
    include: tuple[str, ...] = ()
    fill_left: float | None = None
    fill_right: float | None = None


@dataclass(frozen=True, slots=True)
class BinaryExpr:
    op: str
    lhs: Expr
    rhs: Expr
    matching: VectorMatching | None = None  # set when both sides are instant vectors
    return_bool: bool = False
    pos: PosRange = field(default=NOPOS, compare=False)


@dataclass(frozen=True, slots=True)
class UnaryExpr:
    op: str  # "-" or "+"
    expr: Expr
    pos: PosRange = field(default=NOPOS, compare=False)


@dataclass(frozen=True, slots=True)
class ParenExpr:
    expr: Expr
    pos: PosRange = field(default=NOPOS, compare=False)


Expr = Union[  # noqa: UP007 - a runtime alias used in isinstance-free dispatch and annotations
    NumberLiteral,
    StringLiteral,
    VectorSelector,
    MatrixSelector,
    SubqueryExpr,
    Call,
    AggregateExpr,
    BinaryExpr,
    UnaryExpr,
    ParenExpr,
]
