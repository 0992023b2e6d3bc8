"""Prometheus durations (``model.ParseDuration``), byte sizes (``units.ParseBase2Bytes``) and
environment expansion (Go's ``os.Expand``).

The parsers raise :class:`ValueError` with the text Prometheus prints; the loader adds context.
"""

from __future__ import annotations

import os

from omtsdb.model.labels import quote

_MS_PER_UNIT = {  # unit: (position, milliseconds); units must appear in decreasing size
    "y": (1, 365 * 86_400_000),
    "w": (2, 7 * 86_400_000),
    "d": (3, 86_400_000),
    "h": (4, 3_600_000),
    "m": (5, 60_000),
    "s": (6, 1000),
    "ms": (7, 1),
}
_MAX_NS = (1 << 63) - 1
_NS_PER_MS = 1_000_000


def parse_duration_ms(s: str) -> int:
    """Milliseconds of ``1h30m``, ``15s``, ``0`` ...; no sign, no fractions (as Prometheus)."""
    if s == "0":
        return 0
    if s == "":
        raise ValueError("empty duration string")
    rest = s
    total_ns = 0
    last_pos = 0
    while rest:
        i = 0
        while i < len(rest) and "0" <= rest[i] <= "9":
            i += 1
        if i == 0:
            raise ValueError(f"not a valid duration string: {quote(s)}")
        value = int(rest[:i])
        if value >= 1 << 64:
            raise ValueError(f"not a valid duration string: {quote(s)}")
        rest = rest[i:]
        j = 0
        while j < len(rest) and not ("0" <= rest[j] <= "9"):
            j += 1
        if j == 0:
            raise ValueError(f"not a valid duration string: {quote(s)}")
        unit = rest[:j]
        rest = rest[j:]
        spec = _MS_PER_UNIT.get(unit)
        if spec is None:
            raise ValueError(f"unknown unit {quote(unit)} in duration {quote(s)}")
        pos, ms = spec
        if pos <= last_pos:
            raise ValueError(f"not a valid duration string: {quote(s)}")
        last_pos = pos
        mult = ms * _NS_PER_MS
        if value > (1 << 63) // mult:
            raise ValueError("duration out of range")
        total_ns += value * mult
        if total_ns > _MAX_NS:
            raise ValueError("duration out of range")
    return total_ns // _NS_PER_MS


def format_duration_ms(ms: int) -> str:
    """``model.Duration.String()``: ``1h30m``, ``15s``, ``0s``."""
    if ms == 0:
        return "0s"
    out = []
    for unit in ("y", "w", "d", "h", "m", "s", "ms"):
        size = _MS_PER_UNIT[unit][1]
        if ms >= size:
            n, ms = divmod(ms, size)
            out.append(f"{n}{unit}")
    return "".join(out)


def _unit_map(suffix: str) -> dict[str, float]:
    m = {"B": 1.0}
    scale = 1.0
    for prefix in ("K", "M", "G", "T", "P", "E"):
        scale *= 1024
        m[prefix + suffix] = scale
    return m


_IEC_UNITS = _unit_map("iB")  # KiB, MiB, ...
_OLD_UNITS = _unit_map("B")  # KB, MB, ... (also 1024-based)


def parse_size(s: str) -> int:
    """Bytes of ``10MB``, ``512KiB``, ``1.5GB`` (base 2, like Prometheus's body_size_limit)."""
    try:
        return _parse_unit(s, _IEC_UNITS)
    except ValueError:
        return _parse_unit(s, _OLD_UNITS)


def _parse_unit(s: str, units: dict[str, float]) -> int:
    orig = s
    neg = False
    if s and s[0] in "+-":
        neg = s[0] == "-"
        s = s[1:]
    if s == "0":
        return 0
    if s == "":
        raise ValueError("units: invalid " + orig)
    total = 0.0
    while s:
        if not (s[0] == "." or "0" <= s[0] <= "9"):
            raise ValueError("units: invalid " + orig)
        i = 0
        while i < len(s) and "0" <= s[i] <= "9":
            i += 1
        whole = s[:i]
        s = s[i:]
        frac = ""
        if s and s[0] == ".":
            s = s[1:]
            j = 0
            while j < len(s) and "0" <= s[j] <= "9":
                j += 1
            frac = s[:j]
            s = s[j:]
        if not whole and not frac:
            raise ValueError("units: invalid " + orig)
        if len(whole) > 18 or len(frac) > 18:
            raise ValueError("units: invalid " + orig)
        g = float(int(whole or "0"))
        if frac:
            g += int(frac) / 10 ** len(frac)
        k = 0
        while k < len(s) and not (s[k] == "." or "0" <= s[k] <= "9"):
            k += 1
        unit = s[:k]
        s = s[k:]
        if unit not in units:
            raise ValueError(f"units: unknown unit {unit} in {orig}")
        total += g * units[unit]
    if neg:
        total = -total
    if total < -(2.0**63) or total >= 2.0**63:
        raise ValueError("units: overflow parsing unit")
    return int(total)


go_quote = quote


def expand_env(value: str) -> str:
    """Go's ``os.Expand`` with the environment, as Prometheus applies it to external labels."""
    out: list[str] = []
    i = 0
    n = len(value)
    while i < n:
        ch = value[i]
        if ch != "$" or i + 1 >= n:
            out.append(ch)
            i += 1
            continue
        rest = value[i + 1 :]
        name, width = _shell_name(rest)
        if name == "" and width > 0:
            pass  # bad syntax such as "${}": dropped
        elif name == "":
            out.append("$")
        else:
            out.append("$" if name == "$" else os.environ.get(name, ""))
        i += 1 + width
    return "".join(out)


_SPECIAL = "*#$@!?-0123456789"


def _shell_name(s: str) -> tuple[str, int]:
    if s[0] == "{":
        if len(s) > 2 and s[1] in _SPECIAL and s[2] == "}":
            return s[1], 3
        close = s.find("}", 1)
        if close == 1:
            return "", 2
        if close < 0:
            return "", 1
        return s[1:close], close + 1
    if s[0] in _SPECIAL:
        return s[0], 1
    i = 0
    while i < len(s) and (s[i] == "_" or (s[i].isascii() and s[i].isalnum())):
        i += 1
    return s[:i], i
