"""The value type of an expression."""

from __future__ import annotations

from omtsdb.promql.parser.ast import (
    AggregateExpr,
    BinaryExpr,
    Call,
    Expr,
    MatrixSelector,
    NumberLiteral,
    ParenExpr,
    StringLiteral,
    SubqueryExpr,
    UnaryExpr,
    ValueType,
    VectorSelector,
)
from omtsdb.promql.parser.functions import FUNCTIONS


def expr_type(e: Expr) -> ValueType:
    if isinstance(e, NumberLiteral):
        return ValueType.SCALAR
    if isinstance(e, StringLiteral):
        return ValueType.STRING
    if isinstance(e, VectorSelector | AggregateExpr):
        return ValueType.VECTOR
    if isinstance(e, MatrixSelector | SubqueryExpr):
        return ValueType.MATRIX
    if isinstance(e, Call):
        fn = FUNCTIONS.get(e.func)
        return fn.return_type if fn is not None else ValueType.VECTOR
    if isinstance(e, BinaryExpr):
        lt, rt = expr_type(e.lhs), expr_type(e.rhs)
        if lt is ValueType.SCALAR and rt is ValueType.SCALAR:
            return ValueType.SCALAR
        return ValueType.VECTOR
    if isinstance(e, UnaryExpr | ParenExpr):
        return expr_type(e.expr)
    raise TypeError(f"not an expression: {e!r}")
