"""Prometheus durations: ``1h30m``, ``5m``, ``1d``, ``10s53ms``; printed the way Prometheus's
``model.Duration.String()`` prints them."""

from __future__ import annotations

import re

from omtsdb.errors import BadDataError

_UNITS = {
    "y": 365 * 86_400_000,
    "w": 7 * 86_400_000,
    "d": 86_400_000,
    "h": 3_600_000,
    "m": 60_000,
    "s": 1000,
    "ms": 1,
}
_RE = re.compile(
    r"^(?:([0-9]+)y)?(?:([0-9]+)w)?(?:([0-9]+)d)?(?:([0-9]+)h)?(?:([0-9]+)m)?"
    r"(?:([0-9]+)s)?(?:([0-9]+)ms)?$"
)
_ORDER = ("y", "w", "d", "h", "m", "s", "ms")


def parse_duration(s: str) -> int:
    """Milliseconds of a Prometheus duration. Raises BadDataError."""
    if s == "0":
        return 0
    m = _RE.match(s)
    if not s or m is None or not any(m.groups()):
        raise BadDataError(f'not a valid duration string: "{s}"')
    total = 0
    for unit, g in zip(_ORDER, m.groups(), strict=True):
        if g:
            total += int(g) * _UNITS[unit]
    return total


def format_duration(ms: int) -> str:
    if ms == 0:
        return "0s"
    sign = "-" if ms < 0 else ""
    ms = abs(ms)
    out = []
    for unit in _ORDER:
        size = _UNITS[unit]
        if ms >= size:
            n, ms = divmod(ms, size)
            out.append(f"{n}{unit}")
    return sign + "".join(out)
