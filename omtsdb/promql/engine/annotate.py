"""Annotations (warnings and infos) as Prometheus words them, with the ``(line:col)`` of the
expression they are about."""

from __future__ import annotations

from typing import TYPE_CHECKING

from omtsdb.model.exposition.floats import format_go_g
from omtsdb.model.labels import quote
from omtsdb.promql.parser.ast import PosRange

if TYPE_CHECKING:
    from omtsdb.promql.engine.evaluator import Context

WARN = "PromQL warning"
INFO = "PromQL info"


def position(query: str, pos: PosRange | None) -> str:
    """Prometheus's ``PositionRange.StartPosInput``: 1-based line and column of the start."""
    if not query or pos is None:
        return ""
    p = pos.start
    if p < 0 or p > len(query):
        return "invalid position"
    line = query.count("\n", 0, p) + 1
    col = p - query.rfind("\n", 0, p)
    return f"{line}:{col}"


def _text(ctx: Context, msg: str, pos: PosRange | None) -> str:
    where = position(getattr(ctx, "query", ""), pos)
    return f"{msg} ({where})" if where else msg


def warn(ctx: Context, msg: str, pos: PosRange | None = None) -> None:
    """Add ``PromQL warning: msg (line:col)`` once."""
    text = _text(ctx, f"{WARN}: {msg}", pos)
    if text not in ctx.warnings:
        ctx.warnings.append(text)


def info(ctx: Context, msg: str, pos: PosRange | None = None) -> None:
    """Add ``PromQL info: msg (line:col)`` once."""
    text = _text(ctx, f"{INFO}: {msg}", pos)
    if text not in ctx.infos:
        ctx.infos.append(text)


def for_metric(msg: str, name: str) -> str:
    return f'{msg} for metric name "{name}"' if name else msg


def invalid_quantile(ctx: Context, q: float, pos: PosRange | None) -> None:
    warn(ctx, f"quantile value should be between 0 and 1, got {format_go_g(q)}", pos)


START_TIME_OVERLAP = "sample has start time that overlaps with previous sample timestamp"


def start_time_overlap(ctx: Context, metric: str, count: int, pos: PosRange | None) -> None:
    """Prometheus's ``NewStartTimeOverlapWarning``: one warning per metric name, counting the
    (series, step) windows that had an overlap, at the position of the first one reported."""
    count0, at, where = ctx.st_overlaps.get(metric, (0, -1, ""))
    if at < 0:
        where = position(getattr(ctx, "query", ""), pos)
        ctx.warnings.append("")
        at = len(ctx.warnings) - 1
    total = count0 + count
    msg = f"{WARN}: {START_TIME_OVERLAP} for metric {quote(metric)}"
    if total > 1:
        msg += f" ({total} occurrences)"
    ctx.warnings[at] = f"{msg} ({where})" if where else msg
    ctx.st_overlaps[metric] = (total, at, where)
