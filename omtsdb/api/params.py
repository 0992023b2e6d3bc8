"""Request parameters parsed as Prometheus parses them (times, durations)."""

from __future__ import annotations

import math
from datetime import datetime

from omtsdb.errors import BadDataError
from omtsdb.promql.parser import parse_duration

# Prometheus's minTime/maxTime markers for open ranges
MIN_TIME_MS = -9223309901257974
MAX_TIME_MS = 9223309901257974


def parse_time(name: str, s: str) -> int:
    """Unix seconds (float) or RFC 3339 -> milliseconds."""
    try:
        f = float(s)
    except ValueError:
        f = math.nan
        try:
            dt = datetime.fromisoformat(s.replace("Z", "+00:00"))
            if dt.tzinfo is None:
                raise ValueError(s)
            return round(dt.timestamp() * 1000)
        except ValueError:
            raise BadDataError(
                f'invalid parameter "{name}": cannot parse "{s}" to a valid timestamp'
            ) from None
    if not math.isfinite(f) or "_" in s:
        raise BadDataError(f'invalid parameter "{name}": cannot parse "{s}" to a valid timestamp')
    # Prometheus: whole seconds, and the fraction rounded to milliseconds; clamped to the
    # range Prometheus can represent
    secs = math.trunc(f)
    ms = int(secs) * 1000 + round((f - secs) * 1000)
    return max(MIN_TIME_MS, min(MAX_TIME_MS, ms))


def parse_duration_param(name: str, s: str) -> int:
    """Float seconds or a Prometheus duration -> milliseconds."""
    try:
        f = float(s)
    except ValueError:
        try:
            return parse_duration(s)
        except BadDataError:
            raise BadDataError(
                f'invalid parameter "{name}": cannot parse "{s}" to a valid duration'
            ) from None
    if not math.isfinite(f) or f * 1e9 >= 2**63 or f * 1e9 <= -(2**63):
        raise BadDataError(
            f'invalid parameter "{name}": cannot parse "{s}" to a valid duration. '
            "It overflows int64"
        )
    return round(f * 1000)
