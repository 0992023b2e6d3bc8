"""Content negotiation for exposition (``/federate``): the format and the name-escaping scheme a
scraper asks for in its ``Accept`` header, as Prometheus's ``expfmt.Negotiate`` decides them, and
the escaping of metric and label names that are not legacy-valid.

Escaping schemes (the ``escaping`` Accept parameter): ``underscores`` (default) replaces every
invalid character with ``_``; ``dots`` writes ``.`` as ``_dot_``, ``_`` as ``__`` and other invalid
characters as ``__``; ``values`` prefixes ``U__`` and writes ``_`` as ``__`` and invalid
characters as ``_<hex code point>_``; ``allow-utf-8`` leaves names alone (the text format then
quotes them). Names that are already legacy-valid are never changed.
"""

from __future__ import annotations

from dataclasses import dataclass

from omtsdb.model.labels import is_legacy_metric_name

TEXT = "text"
PROTO_DELIMITED = "proto-delimited"
SCHEMES = ("allow-utf-8", "underscores", "dots", "values")
DEFAULT_SCHEME = "underscores"

_TEXT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
_PROTO_TYPE = (
    "application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited"
)


@dataclass(frozen=True, slots=True)
class Negotiated:
    format: str  # TEXT or PROTO_DELIMITED
    escaping: str  # one of SCHEMES

    @property
    def content_type(self) -> str:
        base = _PROTO_TYPE if self.format == PROTO_DELIMITED else _TEXT_TYPE
        return f"{base}; escaping={self.escaping}"


@dataclass(frozen=True, slots=True)
class _Range:
    type: str
    subtype: str
    q: float
    params: dict[str, str]


def _parse_accept(header: str) -> list[_Range]:
    out: list[_Range] = []
    for part in header.split(","):
        pieces = [p.strip() for p in part.split(";")]
        mt = pieces[0]
        if not mt:
            continue
        typ, _, sub = mt.partition("/")
        params: dict[str, str] = {}
        q = 1.0
        for p in pieces[1:]:
            k, sep, v = p.partition("=")
            if not sep:
                continue
            k, v = k.strip().lower(), v.strip().strip('"')
            if k == "q":
                try:
                    q = float(v)
                except ValueError:
                    q = 0.0
            else:
                params[k] = v
        out.append(_Range(typ.strip().lower(), (sub or "*").strip().lower(), q, params))
    # highest q first; at equal q, specific types before wildcards (stable otherwise)
    out.sort(key=lambda r: (-r.q, r.type == "*", r.subtype == "*"))
    return out


def negotiate(accept: str) -> Negotiated:
    """The first acceptable range wins: delimited protobuf or text 0.0.4; text otherwise. An
    ``escaping`` parameter on any range read before the winner sets the scheme."""
    escaping = DEFAULT_SCHEME
    for r in _parse_accept(accept):
        esc = r.params.get("escaping", "")
        if esc in SCHEMES:
            escaping = esc
        if (
            r.type == "application"
            and r.subtype == "vnd.google.protobuf"
            and r.params.get("proto") == "io.prometheus.client.MetricFamily"
            and r.params.get("encoding") == "delimited"
        ):
            return Negotiated(PROTO_DELIMITED, escaping)
        if (
            r.type == "text"
            and r.subtype == "plain"
            and r.params.get("version", "")
            in (
                "",
                "0.0.4",
            )
        ):
            return Negotiated(TEXT, escaping)
    return Negotiated(TEXT, escaping)


def _legacy_char(c: str, i: int) -> bool:
    if c in "_:" or "a" <= c <= "z" or "A" <= c <= "Z":
        return True
    return i > 0 and "0" <= c <= "9"


def escape_name(name: str, scheme: str) -> str:
    """``name`` under ``scheme``; legacy-valid names (``[a-zA-Z_:][a-zA-Z0-9_:]*``) and the
    ``allow-utf-8`` scheme leave it unchanged."""
    if scheme == "allow-utf-8" or not name or is_legacy_metric_name(name):
        return name
    if scheme == "dots":
        parts = []
        for i, c in enumerate(name):
            if c == "_":
                parts.append("__")
            elif c == ".":
                parts.append("_dot_")
            elif _legacy_char(c, i):
                parts.append(c)
            else:
                parts.append("__")
        return "".join(parts)
    if scheme == "values":
        parts = ["U__"]
        for i, c in enumerate(name):
            if c == "_":
                parts.append("__")
            elif _legacy_char(c, i):
                parts.append(c)
            else:
                parts.append(f"_{ord(c):x}_")
        return "".join(parts)
    return "".join(c if _legacy_char(c, i) else "_" for i, c in enumerate(name))
