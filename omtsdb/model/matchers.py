"""Label matchers (``=``, ``!=``, ``=~``, ``!~``) with RE2 regexes.

Regexes come from users, so they run on RE2 (google-re2): linear time, no catastrophic
backtracking. Like Prometheus, a pattern is fully anchored and ``.`` matches newlines:
``^(?s:PATTERN)$``.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache

import re2

from omtsdb.errors import BadDataError
from omtsdb.model.labels import Labels, as_valid_utf8, quote


class MatchType(enum.Enum):
    EQ = "="
    NEQ = "!="
    RE = "=~"
    NRE = "!~"


_RE2_TO_GO = {
    "missing )": "missing closing )",
    "unexpected )": "unexpected )",
    "missing ]": "missing closing ]",
    "bad repetition operator": "invalid nested repetition operator",
    "missing argument to repetition operator": "missing argument to repetition operator",
    "invalid escape sequence": "invalid escape sequence",
    "bad character class range": "invalid character class range",
    "bad repetition count": "invalid repeat count",
    "trailing \\": "trailing backslash at end of expression",
    "invalid named capture group": "invalid named capture",
    "no argument for repetition operator": "missing argument to repetition operator",
    "invalid repetition size": "invalid repeat count",
}


def _go_regexp_error(e: Exception, pattern: str) -> str:
    """RE2's error text in Go's regexp/syntax words: ``<code>: `<pattern>```."""
    raw = e.args[0] if e.args else ""
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
    code = text.split(":", 1)[0].strip()
    return f"{_RE2_TO_GO.get(code, code)}: `{pattern}`"


@lru_cache(maxsize=4096)
def compile_anchored(pattern: str) -> Callable[[str], bool]:
    """Compile ``pattern`` fully anchored; return a predicate. Raises BadDataError."""
    opts = re2.Options()
    opts.log_errors = False
    opts.dot_nl = True
    # bytes that are not UTF-8 (a "\xff" escape) read as U+FFFD, as Go's regexp reads them
    pattern = as_valid_utf8(pattern)
    try:
        rx = re2.compile("^(?:" + pattern + ")$", options=opts)
    except re2.error as e:
        raise BadDataError(f"error parsing regexp: {_go_regexp_error(e, pattern)}") from None
    match = rx.match

    def pred(s: str) -> bool:
        return match(s) is not None

    return pred


@dataclass(frozen=True, slots=True)
class Matcher:
    """One label matcher. An empty value matches an absent label, as in Prometheus."""

    type: MatchType
    name: str
    value: str
    _pred: Callable[[str], bool] | None = field(default=None, compare=False, hash=False, repr=False)

    def __post_init__(self) -> None:
        if self.type in (MatchType.RE, MatchType.NRE):
            object.__setattr__(self, "_pred", compile_anchored(self.value))

    @classmethod
    def eq(cls, name: str, value: str) -> Matcher:
        return cls(MatchType.EQ, name, value)

    @classmethod
    def parse_op(cls, op: str, name: str, value: str) -> Matcher:
        return cls(MatchType(op), name, value)

    def matches(self, value: str) -> bool:
        """Does a label value (``""`` for an absent label) satisfy this matcher?"""
        t = self.type
        if t is MatchType.EQ:
            return value == self.value
        if t is MatchType.NEQ:
            return value != self.value
        assert self._pred is not None
        if t is MatchType.RE:
            return self._pred(value)
        return not self._pred(value)

    def matches_labels(self, labels: Labels) -> bool:
        return self.matches(labels.get(self.name))

    @property
    def matches_empty(self) -> bool:
        """True when the matcher also selects series that lack the label."""
        return self.matches("")

    def __str__(self) -> str:
        from omtsdb.model.labels import is_legacy_label_name

        n = self.name if is_legacy_label_name(self.name) else quote(self.name)
        return f"{n}{self.type.value}{quote(self.value)}"


def matches_all(matchers: tuple[Matcher, ...] | list[Matcher], labels: Labels) -> bool:
    return all(m.matches(labels.get(m.name)) for m in matchers)
