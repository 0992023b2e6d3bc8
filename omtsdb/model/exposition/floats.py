"""Float and timestamp tokens of the exposition formats, with Go's parsing and printing rules.

- ``NaN`` parses to Prometheus's NaN (``0x7ff8000000000001``, Go's ``math.NaN()``), so stored
  bits equal what Prometheus stores for the same text.
- omtsdb extension, written only by exact dumps: ``NaN:0x<16 hex digits>`` carries any other NaN
  payload (the staleness marker prints as ``NaN:0x7ff0000000000002``). See
  docs/format/exposition.md.
"""

from __future__ import annotations

import math
import struct

NORMAL_NAN: float = struct.unpack("<d", struct.pack("<Q", 0x7FF8000000000001))[0]
_NORMAL_NAN_BITS = 0x7FF8000000000001
_SPECIAL = {
    "nan": NORMAL_NAN,
    "+nan": NORMAL_NAN,
    "-nan": NORMAL_NAN,
    "inf": math.inf,
    "+inf": math.inf,
    "-inf": -math.inf,
    "infinity": math.inf,
    "+infinity": math.inf,
    "-infinity": -math.inf,
}


def parse_float(tok: str) -> float:
    """Go ``strconv.ParseFloat(tok, 64)`` plus the NaN-payload extension. Raises ValueError."""
    low = tok.lower()
    sp = _SPECIAL.get(low)
    if sp is not None:
        return sp
    if low.startswith("nan:0x") and len(tok) == 22:
        bits = int(tok[6:], 16)
        v: float = struct.unpack("<d", struct.pack("<Q", bits))[0]
        if not math.isnan(v):
            raise ValueError(f"not a NaN payload: {tok}")
        return v
    if "_" in tok or not tok:
        raise ValueError(tok)
    body = low.lstrip("+-")
    if body.startswith("0x"):
        return float.fromhex(tok)
    if body[:1] not in "0123456789.":
        raise ValueError(tok)
    return float(tok)


def parse_ts_seconds(tok: str) -> int:
    """OpenMetrics timestamp (seconds, decimal) -> int milliseconds, exactly when it has at
    most millisecond precision."""
    neg = tok.startswith("-")
    body = tok[1:] if tok[:1] in "+-" else tok
    if body.isdigit():
        ms = int(body) * 1000
        return -ms if neg else ms
    sec, dot, frac = body.partition(".")
    if dot and (sec.isdigit() or sec == "") and frac.isdigit():
        ms = int(sec or "0") * 1000 + int((frac + "000")[:3])
        if len(frac) > 3 and int(frac[3]) >= 5:
            ms += 1
        return -ms if neg else ms
    f = parse_float(tok)
    if not math.isfinite(f):
        raise ValueError(tok)
    return round(f * 1000)


def shortest_digits(v: float) -> tuple[str, int]:
    """Shortest round-trip decimal digits of finite, non-zero ``|v|`` and the decimal point
    position ``dp``: ``|v| == 0.DIGITS * 10**dp``."""
    r = repr(abs(v))
    m, _, e = r.partition("e")
    ip, _, fp = m.partition(".")
    full = ip + fp
    lead = len(full) - len(full.lstrip("0"))
    dp = len(ip) - lead + (int(e) if e else 0)
    digits = full.lstrip("0").rstrip("0") or "0"
    return digits, dp


def format_go_f(v: float) -> str:
    """Go ``strconv.FormatFloat(v, 'f', -1, 64)``: plain decimal, never an exponent."""
    if math.isnan(v):
        return "NaN"
    if math.isinf(v):
        return "+Inf" if v > 0 else "-Inf"
    if v == 0:
        return "-0" if math.copysign(1.0, v) < 0 else "0"
    digits, dp = shortest_digits(v)
    sign = "-" if v < 0 else ""
    if dp <= 0:
        return f"{sign}0.{'0' * -dp}{digits}"
    if dp >= len(digits):
        return sign + digits + "0" * (dp - len(digits))
    return f"{sign}{digits[:dp]}.{digits[dp:]}"


def format_go_f_many(vs: list[float]) -> list[str]:
    """``format_go_f`` over many values: Python's shortest ``repr`` is the same digits, so
    values whose ``repr`` has no exponent only lose a trailing ``.0``; the rest take the slow
    path."""
    out = [repr(v) for v in vs]
    for i, r in enumerate(out):
        if r[-2:] == ".0":
            out[i] = r[:-2]
        elif "e" in r or "n" in r:  # exponent, inf, nan
            out[i] = format_go_f(vs[i])
    return out


def format_go_e(v: float) -> str:
    """Go ``strconv.FormatFloat(v, 'e', -1, 64)``: shortest digits, exponent of 2+ digits."""
    if v == 0 or not math.isfinite(v):
        return format_go_f(v)
    digits, dp = shortest_digits(v)
    exp = dp - 1
    sign = "-" if v < 0 else ""
    mant = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
    return f"{sign}{mant}e{'-' if exp < 0 else '+'}{abs(exp):02d}"


def format_json_sample(v: float) -> str:
    """A vector or matrix sample value as Prometheus's JSON writes it (``jsonutil``): Go's
    ``'f'`` format, but ``'e'`` when ``|v| < 1e-6`` or ``|v| >= 1e21`` (scalars are always
    ``'f'``)."""
    a = abs(v)
    if a != 0 and (a < 1e-6 or a >= 1e21):
        return format_go_e(v)
    return format_go_f(v)


def format_json_samples(vs: list[float]) -> list[str]:
    """``format_json_sample`` over many values (the ``format_go_f_many`` fast path; values
    whose ``repr`` has an exponent, |v| >= 1e16 or < 1e-4, take the slow path)."""
    out = [repr(v) for v in vs]
    for i, r in enumerate(out):
        if r[-2:] == ".0":
            out[i] = r[:-2]
        elif "e" in r or "n" in r:
            out[i] = format_json_sample(vs[i])
    return out


def format_go_g(v: float) -> str:
    """Go ``strconv.FormatFloat(v, 'g', -1, 64)``, as the text format writes values."""
    if math.isnan(v) or math.isinf(v) or v == 0:
        return format_go_f(v)
    digits, dp = shortest_digits(v)
    exp = dp - 1
    if -4 <= exp < 21 and exp < 6:
        return format_go_f(v)
    if exp >= 6 or exp < -4:
        sign = "-" if v < 0 else ""
        mant = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
        return f"{sign}{mant}e{'-' if exp < 0 else '+'}{abs(exp):02d}"
    return format_go_f(v)


def format_exact(v: float) -> str:
    """Shortest text that parses back to the same bits (with the NaN-payload extension)."""
    if math.isnan(v):
        bits = struct.unpack("<Q", struct.pack("<d", v))[0]
        return "NaN" if bits == _NORMAL_NAN_BITS else f"NaN:0x{bits:016x}"
    if math.isinf(v):
        return "+Inf" if v > 0 else "-Inf"
    return repr(v)


def format_ts_seconds(ms: int) -> str:
    """Milliseconds -> OpenMetrics seconds text, exact (``1700000000.123``)."""
    neg = ms < 0
    q, r = divmod(abs(ms), 1000)
    s = f"{q}.{r:03d}".rstrip("0").rstrip(".") if r else str(q)
    return "-" + s if neg else s
