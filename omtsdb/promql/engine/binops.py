"""Binary operators: scalar/vector arithmetic and comparisons, vector matching, set operators."""

from __future__ import annotations

from typing import Any

import numpy as np

from omtsdb.errors import ExecutionError
from omtsdb.model.labels import METRIC_NAME, Labels
from omtsdb.model.samples import F64
from omtsdb.promql.engine.block import MEMO_MAX, Block, BoolArr, RowsMemo, drop_metadata
from omtsdb.promql.parser.ast import Cardinality, VectorMatching

ARITH = frozenset({"+", "-", "*", "/", "%", "^", "atan2"})
COMPARISON = frozenset({"==", "!=", "<", "<=", ">", ">="})


_UFUNCS = {
    "+": np.add,
    "-": np.subtract,
    "*": np.multiply,
    "/": np.true_divide,
    "%": np.fmod,
    "^": np.power,
    "atan2": np.arctan2,
    "==": np.equal,
    "!=": np.not_equal,
    "<": np.less,
    "<=": np.less_equal,
    ">": np.greater,
    ">=": np.greater_equal,
}


def apply_op(op: str, a: F64, b: F64) -> F64:
    """Element-wise ``a op b``; comparisons give 1.0/0.0."""
    fn = _UFUNCS.get(op)
    if fn is None:
        raise ExecutionError(f"unknown binary operator {op}")
    with np.errstate(all="ignore"):
        out: F64 = np.asarray(fn(a, b), dtype=np.float64)
    return out


def scalar_scalar(op: str, a: F64, b: F64) -> F64:
    return apply_op(op, a, b)


def vector_scalar(op: str, v: Block, s: F64, swapped: bool, return_bool: bool) -> Block:
    """``v op s`` (or ``s op v`` when ``swapped``)."""
    lhs, rhs = (s[None, :], v.vals) if swapped else (v.vals, s[None, :])
    res = apply_op(op, lhs, rhs)
    if op in COMPARISON and not return_bool:
        keep = v.mask & (res == 1.0)
        return Block(list(v.labels), v.vals, keep, drop=v.drop)
    return Block(v.labels, res, v.mask.copy(), drop=v.drop).mark_drop()


_SIGS: dict[tuple[Labels, bool, tuple[str, ...]], Labels] = {}
_RESULT: dict[tuple[Labels, Labels, str, bool, bool, tuple[str, ...], tuple[str, ...]], Labels] = {}


def _signature(lb: Labels, m: VectorMatching) -> Labels:
    key = (lb, m.on, m.matching_labels)
    got = _SIGS.get(key)
    if got is None:
        got = lb.keep(*m.matching_labels) if m.on else lb.without(METRIC_NAME, *m.matching_labels)
        if len(_SIGS) >= MEMO_MAX:
            _SIGS.clear()
        _SIGS[key] = got
    return got


# per-label-list work memoised (``RowsMemo``): dashboards ask the same matchings again and again
_GROUPS: RowsMemo[dict[Labels, list[int]]] = RowsMemo()
_PLANS: RowsMemo[tuple[np.ndarray, np.ndarray, list[Labels]]] = RowsMemo()


def _matching_key(m: VectorMatching) -> tuple[Any, ...]:
    return (m.card, m.on, m.matching_labels, m.include)


def _sig_groups(labels: list[Labels], m: VectorMatching) -> dict[Labels, list[int]]:
    """Rows of each signature, in order of first appearance."""

    def make() -> dict[Labels, list[int]]:
        groups: dict[Labels, list[int]] = {}
        for i, lb in enumerate(labels):
            groups.setdefault(_signature(lb, m), []).append(i)
        return groups

    return _GROUPS.get([labels], _matching_key(m), make)


def _side_index(
    blk: Block, m: VectorMatching, side: str, unique: bool
) -> tuple[dict[Labels, int], F64, BoolArr, list[Labels]]:
    """Collapse the series of one side by signature. With ``unique`` the side must have at
    most one series per signature at each step."""
    groups = _sig_groups(blk.labels, m)
    sigs = list(groups)
    if len(sigs) == len(blk.labels):  # one series a signature: the block as it is
        return {s: k for k, s in enumerate(sigs)}, blk.vals, blk.mask, list(blk.labels)
    vals = np.empty((len(sigs), blk.nsteps))
    mask = np.zeros((len(sigs), blk.nsteps), np.bool_)
    rep: list[Labels] = []
    for k, sig in enumerate(sigs):
        rows = groups[sig]
        if len(rows) == 1:
            vals[k], mask[k] = blk.vals[rows[0]], blk.mask[rows[0]]
            rep.append(blk.labels[rows[0]])
            continue
        sub = blk.mask[rows]
        if unique and (sub.sum(axis=0) > 1).any():
            step_lbls = [blk.labels[r] for r in rows]
            raise ExecutionError(
                f"found duplicate series for the match group {sig} on the {side} hand-side of "
                f"the operation: [{', '.join(map(str, step_lbls[:2]))}];many-to-many matching "
                "not allowed: matching labels must be unique on one side"
            )
        first = np.argmax(sub, axis=0)
        vals[k] = blk.vals[np.array(rows)[first], np.arange(blk.nsteps)]
        mask[k] = sub.any(axis=0)
        rep.append(blk.labels[rows[0]])
    return {s: k for k, s in enumerate(sigs)}, vals, mask, rep


def _result_labels(
    lhs: Labels, rhs: Labels, op: str, m: VectorMatching, return_bool: bool
) -> Labels:
    one_to_one = m.card is Cardinality.ONE_TO_ONE
    # everything _result_labels_of reads (hashable without the dataclass's own hash)
    key = (lhs, rhs if m.include else lhs, op, one_to_one, m.on, m.matching_labels, m.include)
    got = _RESULT.get(key)
    if got is None:
        got = _result_labels_of(lhs, rhs, op, m)
        if len(_RESULT) >= MEMO_MAX:
            _RESULT.clear()
        _RESULT[key] = got
    return got


def _result_labels_of(lhs: Labels, rhs: Labels, op: str, m: VectorMatching) -> Labels:
    lb = lhs
    if op in ARITH:  # a bool comparison marks the name for dropping instead
        lb = drop_metadata(lb)
    if m.card is Cardinality.ONE_TO_ONE:
        lb = lb.keep(*m.matching_labels) if m.on else lb.without(*m.matching_labels)
    if m.include:
        pairs = []
        drop = []
        for n in m.include:
            v = rhs.get(n)
            if v:
                pairs.append((n, v))
            else:
                drop.append(n)
        lb = lb.without(*drop).with_pairs(pairs) if (pairs or drop) else lb
    return lb


def vector_vector(op: str, lhs: Block, rhs: Block, m: VectorMatching, return_bool: bool) -> Block:
    if op in ("and", "or", "unless"):
        return _set_op(op, lhs, rhs, m)
    swap = m.card is Cardinality.ONE_TO_MANY
    many, one = (rhs, lhs) if swap else (lhs, rhs)
    one_idx, one_vals, one_mask, one_rep = _side_index(
        one, m, "left" if swap else "right", unique=True
    )
    if m.card is Cardinality.ONE_TO_ONE:
        _side_index(many, m, "left", unique=True)  # raises on duplicates in the "many" side
    if m.fill_left is None and m.fill_right is None:
        blk = _matched(op, many, one_idx, one_vals, one_mask, one_rep, m, swap, return_bool)
    else:
        blk = _filled(
            op, lhs, one, many, one_idx, one_vals, one_mask, one_rep, m, swap, return_bool
        )
    if return_bool:
        blk = blk.mark_drop()
    if m.card is not Cardinality.ONE_TO_ONE:
        _check_unique_many(blk)
    return blk


def _match_plan(
    op: str,
    many: Block,
    one_idx: dict[Labels, int],
    one_rep: list[Labels],
    m: VectorMatching,
    return_bool: bool,
) -> tuple[np.ndarray, np.ndarray, list[Labels]]:
    """Rows of the "many" side that match, their row on the "one" side, and the result's
    labels (memoised: the plan depends on labels only)."""

    def make() -> tuple[np.ndarray, np.ndarray, list[Labels]]:
        rows: list[int] = []
        ones: list[int] = []
        labels: list[Labels] = []
        for i, lb in enumerate(many.labels):
            k = one_idx.get(_signature(lb, m))
            if k is None:
                continue
            rows.append(i)
            ones.append(k)
            labels.append(_result_labels(lb, one_rep[k], op, m, return_bool))
        ri, oi = np.array(rows, np.intp), np.array(ones, np.intp)
        ri.flags.writeable = oi.flags.writeable = False
        return ri, oi, labels

    ri, oi, labels = _PLANS.get([many.labels, one_rep], (op, return_bool, *_matching_key(m)), make)
    return ri, oi, list(labels)


def _matched(
    op: str,
    many: Block,
    one_idx: dict[Labels, int],
    one_vals: F64,
    one_mask: BoolArr,
    one_rep: list[Labels],
    m: VectorMatching,
    swap: bool,
    return_bool: bool,
) -> Block:
    """Matched pairs only (no fill modifiers): all rows in one array operation."""
    ri, oi, labels = _match_plan(op, many, one_idx, one_rep, m, return_bool)
    mv, mm = many.vals[ri], many.mask[ri]
    ov, om = one_vals[oi], one_mask[oi]
    a, b = (ov, mv) if swap else (mv, ov)
    res = apply_op(op, a, b)
    mask = mm & om
    if op in COMPARISON and not return_bool:
        mask &= res == 1.0
        res = a
    n = many.nsteps
    return Block(labels, res.reshape(len(labels), n), mask.reshape(len(labels), n))


def _filled(
    op: str,
    lhs: Block,
    one: Block,
    many: Block,
    one_idx: dict[Labels, int],
    one_vals: F64,
    one_mask: BoolArr,
    one_rep: list[Labels],
    m: VectorMatching,
    swap: bool,
    return_bool: bool,
) -> Block:
    """With the experimental fill modifiers: series by series."""
    out_labels: list[Labels] = []
    out_vals: list[F64] = []
    out_mask: list[BoolArr] = []
    # As in Prometheus, the fill values are not swapped with the sides for group_right: the
    # right-hand fill value fills a missing "one" side, the left-hand one a missing "many" side.
    fill_many = m.fill_left
    fill_one = m.fill_right
    matched_one: set[int] = set()
    for i, lb in enumerate(many.labels):
        k = one_idx.get(_signature(lb, m))
        if k is None:
            if fill_one is None:
                continue
            ov = np.full(many.nsteps, fill_one)
            om = np.ones(many.nsteps, np.bool_)
            orep = _signature(lb, m)  # a filled series has only the match group's labels
        else:
            matched_one.add(k)
            ov, om, orep = one_vals[k], one_mask[k], one_rep[k]
            if fill_one is not None:
                ov = np.where(om, ov, fill_one)
                om = np.ones(many.nsteps, np.bool_)
        mv, mm = many.vals[i], many.mask[i]
        if fill_many is not None:
            mv = np.where(mm, mv, fill_many)
            mm = np.ones(many.nsteps, np.bool_) & om
        a, b = (ov, mv) if swap else (mv, ov)
        res = apply_op(op, a, b)
        mask = mm & om
        if op in COMPARISON and not return_bool:
            mask = mask & (res == 1.0)
            res = a
        out_labels.append(_result_labels(lb, orep, op, m, return_bool))
        out_vals.append(res)
        out_mask.append(mask)
    if fill_many is not None:
        for sig, k in one_idx.items():
            if k in matched_one:
                continue
            ov, om = one_vals[k], one_mask[k]
            mv = np.full(one.nsteps, fill_many)
            a, b = (ov, mv) if swap else (mv, ov)
            res = apply_op(op, a, b)
            mask = om.copy()
            if op in COMPARISON and not return_bool:
                mask &= res == 1.0
                res = a
            lb = one_rep[k]
            out_labels.append(_result_labels(_signature(lb, m), lb, op, m, return_bool))
            out_vals.append(res)
            out_mask.append(mask)
            del sig
    n = lhs.nsteps
    return Block(
        out_labels,
        np.array(out_vals).reshape(len(out_labels), n),
        np.array(out_mask).reshape(len(out_labels), n),
    )


def _check_unique_many(blk: Block) -> None:
    seen: dict[Labels, int] = {}
    for i, lb in enumerate(blk.labels):
        j = seen.get(lb)
        if j is not None and (blk.mask[i] & blk.mask[j]).any():
            raise ExecutionError(
                "multiple matches for labels: grouping labels must ensure unique matches"
            )
        seen[lb] = i


def _set_op(op: str, lhs: Block, rhs: Block, m: VectorMatching) -> Block:
    rsig: dict[Labels, BoolArr] = {}
    for i, lb in enumerate(rhs.labels):
        s = _signature(lb, m)
        prev = rsig.get(s)
        rsig[s] = rhs.mask[i] if prev is None else (prev | rhs.mask[i])
    none = np.zeros(lhs.nsteps, np.bool_)
    if op == "and":
        masks = [lhs.mask[i] & rsig.get(_signature(lb, m), none) for i, lb in enumerate(lhs.labels)]
        mask = np.array(masks).reshape(lhs.mask.shape)
        return Block(list(lhs.labels), lhs.vals, mask, drop=lhs.drop)
    if op == "unless":
        masks = [
            lhs.mask[i] & ~rsig.get(_signature(lb, m), none) for i, lb in enumerate(lhs.labels)
        ]
        mask = np.array(masks).reshape(lhs.mask.shape)
        return Block(list(lhs.labels), lhs.vals, mask, drop=lhs.drop)
    # or
    lsig: dict[Labels, BoolArr] = {}
    for i, lb in enumerate(lhs.labels):
        s = _signature(lb, m)
        prev = lsig.get(s)
        lsig[s] = lhs.mask[i] if prev is None else (prev | lhs.mask[i])
    labels = list(lhs.labels)
    vals = [lhs.vals]
    masks = [lhs.mask]
    for i, lb in enumerate(rhs.labels):
        taken = lsig.get(_signature(lb, m), none)
        labels.append(lb)
        vals.append(rhs.vals[i : i + 1])
        masks.append((rhs.mask[i] & ~taken)[None, :])
    n = lhs.nsteps
    drop = None
    if lhs.drop is not None or rhs.drop is not None:
        drop = np.concatenate(
            [
                lhs.drop if lhs.drop is not None else np.zeros(len(lhs), np.bool_),
                rhs.drop if rhs.drop is not None else np.zeros(len(rhs), np.bool_),
            ]
        )
    return Block(
        labels,
        np.concatenate(vals).reshape(len(labels), n),
        np.concatenate(masks).reshape(len(labels), n),
        drop=drop,
    )
