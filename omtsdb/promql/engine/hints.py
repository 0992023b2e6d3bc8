"""What the engine tells storage about each selector: the ``func``, ``by`` and ``grouping`` of
``storage.interface.SelectHints``, found from the selector's place in the tree as Prometheus's
``extractFuncFromPath``/``extractGroupsFromPath`` find them:

- ``func`` is the nearest function or aggregation above the selector, or empty when a binary
  operator comes first on the way up;
- ``by``/``grouping`` are the aggregation's only when the selector is its direct argument
  (``sum by (a) (x)``; not ``sum(rate(x[5m]))``, not ``sum((x))``).

The table is keyed by the identity of the ``VectorSelector`` nodes of one expression and
memoised per expression object (the engine's parse cache hands out the same AST for the same
text, so a repeated query walks nothing). Thread model: the memo is a dict guarded by a lock;
entries hold their expression so that the identities stay theirs.
"""

from __future__ import annotations

import dataclasses
import threading
from typing import Any

from omtsdb.promql.parser.ast import AggregateExpr, BinaryExpr, Call, Expr, VectorSelector

# (func, by, grouping) of one selector
Parent = tuple[str, bool, tuple[str, ...]]
NO_PARENT: Parent = ("", False, ())
_MEMO_MAX = 1024
_memo: dict[int, tuple[Expr, dict[int, Parent]]] = {}
_lock = threading.Lock()


def selector_parents(expr: Expr) -> dict[int, Parent]:
    """``id(selector) -> (func, by, grouping)`` for every vector selector of ``expr``."""
    key = id(expr)
    with _lock:
        got = _memo.get(key)
    if got is not None and got[0] is expr:
        return got[1]
    table: dict[int, Parent] = {}
    _walk(expr, "", None, table)
    with _lock:
        if len(_memo) >= _MEMO_MAX:
            _memo.clear()
        _memo[key] = (expr, table)
    return table


def _walk(node: Any, func: str, agg: AggregateExpr | None, out: dict[int, Parent]) -> None:
    if isinstance(node, VectorSelector):
        out[id(node)] = (func, False, ()) if agg is None else (func, not agg.without, agg.grouping)
        return
    if isinstance(node, AggregateExpr):
        func, agg = node.op, node
    elif isinstance(node, Call):
        func, agg = node.func, None
    elif isinstance(node, BinaryExpr):
        func, agg = "", None
    elif dataclasses.is_dataclass(node) and not isinstance(node, type):
        agg = None
    elif isinstance(node, tuple):
        for x in node:
            _walk(x, func, agg, out)
        return
    else:
        return
    for f in dataclasses.fields(node):
        if f.name != "pos":
            _walk(getattr(node, f.name), func, agg, out)
