"""Immutable, sorted, hashable label sets and label validation (Prometheus 3 rules).

A :class:`Labels` stores its pairs as one flat tuple ``(name0, value0, name1, value1, ...)``
sorted by name: compact (one tuple per series), hashable, and ordered the way Prometheus orders
label sets (pair by pair, then by length).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from omtsdb.errors import BadDataError

METRIC_NAME = "__name__"
BUCKET_LABEL = "le"

_LEGACY_LABEL_RE = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
_LEGACY_METRIC_RE = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")


def is_legacy_label_name(name: str) -> bool:
    return _LEGACY_LABEL_RE.match(name) is not None


def is_legacy_metric_name(name: str) -> bool:
    return _LEGACY_METRIC_RE.match(name) is not None


def is_valid_label_name(name: str) -> bool:
    """Prometheus 3 (UTF-8 validation scheme): any non-empty valid UTF-8 string."""
    return bool(name) and _is_utf8(name)


def is_valid_metric_name(name: str) -> bool:
    return bool(name) and _is_utf8(name)


def _is_utf8(s: str) -> bool:
    try:
        s.encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates
        return False
    return True


class Labels:
    """An immutable sorted set of label pairs. Empty values are dropped, as in Prometheus."""

    __slots__ = ("_hash", "_t")

    _t: tuple[str, ...]
    _hash: int

    def __init__(self, pairs: Iterable[tuple[str, str]] | Mapping[str, str] = ()) -> None:
        items = pairs.items() if isinstance(pairs, Mapping) else pairs
        d: dict[str, str] = {}
        for n, v in items:
            if v != "":
                d[n] = v
        flat: list[str] = []
        for n in sorted(d):
            flat.append(n)
            flat.append(d[n])
        self._t = tuple(flat)
        self._hash = hash(self._t)

    @classmethod
    def from_flat(cls, flat: tuple[str, ...]) -> Labels:
        """Build from an already sorted, de-duplicated flat tuple without empty values."""
        obj = cls.__new__(cls)
        obj._t = flat
        obj._hash = hash(flat)
        return obj

    @property
    def flat(self) -> tuple[str, ...]:
        return self._t

    def __hash__(self) -> int:
        return self._hash

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Labels):
            return NotImplemented
        return self._hash == other._hash and self._t == other._t

    def __lt__(self, other: Labels) -> bool:
        return self._pairs_key() < other._pairs_key()

    def __le__(self, other: Labels) -> bool:
        return self._pairs_key() <= other._pairs_key()

    def __gt__(self, other: Labels) -> bool:
        return self._pairs_key() > other._pairs_key()

    def __ge__(self, other: Labels) -> bool:
        return self._pairs_key() >= other._pairs_key()

    def _pairs_key(self) -> tuple[tuple[str, str], ...]:
        t = self._t
        return tuple(zip(t[0::2], t[1::2], strict=True))

    def sort_key(self) -> tuple[tuple[str, str], ...]:
        """A key that orders label sets as Prometheus's ``labels.Compare`` does."""
        return self._pairs_key()

    def __len__(self) -> int:
        return len(self._t) // 2

    def __bool__(self) -> bool:
        return bool(self._t)

    def __iter__(self) -> Iterator[tuple[str, str]]:
        t = self._t
        return iter(zip(t[0::2], t[1::2], strict=True))

    def __contains__(self, name: object) -> bool:
        return name in self._t[0::2]

    def items(self) -> list[tuple[str, str]]:
        return list(self)

    def names(self) -> tuple[str, ...]:
        return self._t[0::2]

    def get(self, name: str, default: str = "") -> str:
        t = self._t
        for i in range(0, len(t), 2):
            if t[i] == name:
                return t[i + 1]
        return default

    @property
    def name(self) -> str:
        """The metric name (``__name__``), or ``""``."""
        return self.get(METRIC_NAME)

    def to_dict(self) -> dict[str, str]:
        return dict(self)

    def with_pairs(self, pairs: Iterable[tuple[str, str]]) -> Labels:
        d = dict(self)
        for n, v in pairs:
            d[n] = v
        return Labels(d.items())

    def set(self, name: str, value: str) -> Labels:
        d = dict(self)
        d[name] = value
        return Labels(d.items())

    def without(self, *names: str) -> Labels:
        drop = set(names)
        t = self._t
        flat: list[str] = []
        for i in range(0, len(t), 2):
            if t[i] not in drop:
                flat.append(t[i])
                flat.append(t[i + 1])
        return Labels.from_flat(tuple(flat))

    def keep(self, *names: str) -> Labels:
        want = set(names)
        t = self._t
        flat: list[str] = []
        for i in range(0, len(t), 2):
            if t[i] in want:
                flat.append(t[i])
                flat.append(t[i + 1])
        return Labels.from_flat(tuple(flat))

    def validate(self) -> None:
        """Raise :class:`BadDataError` unless every name and value is valid (Prometheus 3)."""
        t = self._t
        for i in range(0, len(t), 2):
            n, v = t[i], t[i + 1]
            if n == METRIC_NAME:
                if not is_valid_metric_name(v):
                    raise BadDataError(f"invalid metric name {v!r}")
            elif not is_valid_label_name(n):
                raise BadDataError(f"invalid label name {n!r}")
            if not _is_utf8(v):
                raise BadDataError(f"invalid label value for {n!r}: not valid UTF-8")

    def __repr__(self) -> str:
        return f"Labels({self})"

    def __str__(self) -> str:
        """Prometheus's ``Labels.String()``: ``{a="1", b="2"}`` (the name as a plain label)."""
        parts = [f"{_fmt_name(n)}={quote(v)}" for n, v in self]
        return "{" + ", ".join(parts) + "}"

    def to_promql(self) -> str:
        """``name{a="1"}`` as PromQL and the text format print a series."""
        name = self.name
        rest = [(n, v) for n, v in self if n != METRIC_NAME]
        inner = ", ".join(f"{_fmt_name(n)}={quote(v)}" for n, v in rest)
        if name and is_legacy_metric_name(name):
            return name + ("{" + inner + "}" if rest else "")
        if name:
            inner = quote(name) + (", " + inner if rest else "")
        return "{" + inner + "}"

    def __reduce__(self) -> tuple[Any, ...]:
        return (Labels.from_flat, (self._t,))


def _fmt_name(n: str) -> str:
    return n if is_legacy_label_name(n) else quote(n)


def quote(s: str) -> str:
    """Go's ``strconv.Quote`` for the characters that occur in label values."""
    out = ['"']
    for ch in s:
        if ch == '"':
            out.append('\\"')
        elif ch == "\\":
            out.append("\\\\")
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif ch == "\r":
            out.append("\\r")
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\x{ord(ch):02x}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def quote_bytes(b: bytes) -> str:
    """Go's ``strconv.Quote`` of a byte string: bytes that are not UTF-8 print as ``\\xNN``."""
    text = b.decode("utf-8", "surrogateescape")
    out = quote(text)
    return "".join(f"\\x{ord(c) - 0xDC00:02x}" if 0xDC80 <= ord(c) <= 0xDCFF else c for c in out)


def as_valid_utf8(s: str) -> str:
    """``s`` with bytes that are not UTF-8 (surrogate escapes from a ``"\\xff"`` literal)
    replaced by U+FFFD, as Go's JSON encoder writes them."""
    if _is_utf8(s):
        return s
    return s.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
