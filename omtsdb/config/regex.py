"""Anchored RE2 regexes for relabeling, with Go's ``Regexp.Expand`` templates.

A relabel regex is matched fully anchored with ``.`` matching newlines, ``^(?s:RE)$``, exactly
as Prometheus compiles it. Common shapes skip the regex engine: ``(.*)``, literals and literal
alternations (``a|b|c``), and one wildcard between literals (``__meta_foo_(.+)``, ``pre.*``).
Everything else runs on RE2 (google-re2), called through its low-level ``Match`` (the Python
wrapper's per-call cost is several microseconds).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import re2

from omtsdb.model.matchers import _RE2_TO_GO

# Group values of one match: index 0 is the whole string, None = the group did not take part.
Groups = tuple[str | None, ...]

_META = frozenset("\\.+*?()|[]{}^$")
_WILDCARDS = {".*": (0, False), ".+": (1, False), "(.*)": (0, True), "(.+)": (1, True)}

try:  # the low-level matcher; fall back to the public API if the wrapper changes
    from re2 import _re2 as _low

    _ANCHOR_BOTH: Any = _low.RE2.Anchor.ANCHOR_BOTH
except (ImportError, AttributeError):  # pragma: no cover - depends on the installed wrapper
    _ANCHOR_BOTH = None


_MISS = object()
_CACHE_SIZE = 4096
_CACHE_MAX_LEN = 256


class RegexError(ValueError):
    """The regex does not compile; the message is Go's ``error parsing regexp: ...``."""


class Regex:
    """A compiled relabel regex: ``match(s)`` and ``groups(s)``."""

    __slots__ = (
        "_cache",
        "_kind",
        "_lits",
        "_min",
        "_prefix",
        "_re",
        "_suffix",
        "group_names",
        "ngroups",
    )

    def __init__(self, pattern: str) -> None:
        self.group_names: dict[str, int] = {}
        self._lits: frozenset[str] = frozenset()
        self._prefix = self._suffix = ""
        self._min = 0
        self._re: Any = None
        # RE2 results by input: label names and metric names repeat, a lookup is ~20x cheaper
        self._cache: dict[str, Groups | None] = {}
        fast = _fast_shape(pattern)
        if fast is not None:
            self._kind, self.ngroups, self._lits, self._prefix, self._suffix, self._min = fast
            return
        opts = re2.Options()
        opts.log_errors = False
        opts.dot_nl = True
        try:
            compiled = re2.compile("^(?s:" + pattern + ")$", options=opts)
        except re2.error as e:
            raise RegexError(_go_error(e)) from None
        self._kind = "re2"
        self.ngroups = int(compiled.groups)
        self.group_names = dict(compiled.groupindex)
        self._re = compiled._regexp if _ANCHOR_BOTH is not None else compiled

    def match(self, s: str) -> bool:
        kind = self._kind
        if kind == "set":
            return s in self._lits
        if kind == "wild":
            p, x = self._prefix, self._suffix
            return (
                len(s) >= len(p) + len(x) + self._min
                and s.startswith(p)
                and (not x or s.endswith(x))
            )
        return self.groups(s) is not None

    def groups(self, s: str) -> Groups | None:
        """Values of group 0..n for a match of the whole ``s``, or None."""
        kind = self._kind
        if kind == "set":
            if s not in self._lits:
                return None
            return (s, s) if self.ngroups else (s,)
        if kind == "wild":
            p, x = self._prefix, self._suffix
            if len(s) < len(p) + len(x) + self._min or not s.startswith(p):
                return None
            if x and not s.endswith(x):
                return None
            if not self.ngroups:
                return (s,)
            return (s, s[len(p) : len(s) - len(x)])
        cache = self._cache
        hit = cache.get(s, _MISS)
        if hit is not _MISS:
            return hit  # type: ignore[return-value]
        res = self._re2_groups(s)
        if len(s) <= _CACHE_MAX_LEN:
            if len(cache) >= _CACHE_SIZE:
                cache.clear()
            cache[s] = res
        return res

    def _re2_groups(self, s: str) -> Groups | None:
        if _ANCHOR_BOTH is None:  # pragma: no cover
            m = self._re.fullmatch(s)
            return None if m is None else (m.group(0), *m.groups())
        b = s.encode("utf-8")
        spans = self._re.Match(_ANCHOR_BOTH, b, 0, len(b))
        if spans[0][0] < 0:
            return None
        if len(spans) == 1:
            return (s,)
        if len(b) == len(s):  # ASCII: byte offsets are character offsets
            return tuple(None if a < 0 else s[a:z] for a, z in spans)
        return tuple(None if a < 0 else b[a:z].decode("utf-8") for a, z in spans)


def _go_error(e: Exception) -> str:
    raw = e.args[0] if e.args else ""
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
    code, _, expr = text.partition(": ")
    code = code.strip()
    go = _RE2_TO_GO.get(code) or _MORE_RE2_TO_GO.get(code, code)
    return f"error parsing regexp: {go}: `{expr}`"


_MORE_RE2_TO_GO = {
    "invalid perl operator": "invalid or unsupported Perl syntax",
    "missing ]": "missing closing ]",
    "invalid character class": "invalid character class",
    "invalid UTF-8": "invalid UTF-8",
    "bad named capture group": "invalid named capture",
    "bad repetition argument": "invalid repeat count",
}


def _literal(s: str) -> str | None:
    """The text a regex fragment matches if it is a plain literal (``\\.`` allowed), else None."""
    out = []
    i = 0
    while i < len(s):
        ch = s[i]
        if ch == "\\":
            if i + 1 < len(s) and s[i + 1].isascii() and not s[i + 1].isalnum():
                out.append(s[i + 1])
                i += 2
                continue
            return None
        if ch in _META:
            return None
        out.append(ch)
        i += 1
    return "".join(out)


_Shape = tuple[str, int, frozenset[str], str, str, int]


def _fast_shape(pattern: str) -> _Shape | None:
    lit = _literal(pattern)
    if lit is not None:
        return ("set", 0, frozenset((lit,)), "", "", 0)
    grouped = False
    body = pattern
    if body.startswith("(") and body.endswith(")") and not body.startswith("(?"):
        grouped, body = True, body[1:-1]
    alts = body.split("|")
    if len(alts) > 1 or grouped:
        lits = [_literal(a) for a in alts]
        if all(x is not None for x in lits):
            return ("set", int(grouped), frozenset(x for x in lits if x is not None), "", "", 0)
    for wc, (minimum, capture) in _WILDCARDS.items():
        at = pattern.find(wc)
        while at >= 0:
            head, tail = pattern[:at], pattern[at + len(wc) :]
            # ``\.*`` is an escaped dot repeated, not a wildcard
            if not head.endswith("\\") or head.endswith("\\\\"):
                p, x = _literal(head), _literal(tail)
                if p is not None and x is not None:
                    return ("wild", int(capture), frozenset(), p, x, minimum)
            at = pattern.find(wc, at + 1)
    return None


@lru_cache(maxsize=4096)
def compile_regex(pattern: str) -> Regex:
    """The compiled, cached regex. Raises RegexError."""
    return Regex(pattern)


# --- templates (Go's Regexp.Expand) -------------------------------------------------------

# A compiled template: literal text, or the index of a group to insert (-1 for none).
Template = tuple[str | int, ...]


def parse_template(template: str, group_names: dict[str, int]) -> Template:
    """Split ``$1``, ``${1}``, ``${name}``, ``$name``, ``$$`` references out of a template."""
    parts: list[str | int] = []
    text: list[str] = []
    i = 0
    n = len(template)
    while i < n:
        ch = template[i]
        if ch != "$":
            text.append(ch)
            i += 1
            continue
        if i + 1 < n and template[i + 1] == "$":
            text.append("$")
            i += 2
            continue
        ref = _extract(template, i + 1)
        if ref is None:  # malformed: the $ is literal text
            text.append("$")
            i += 1
            continue
        name, end = ref
        if text:
            parts.append("".join(text))
            text = []
        parts.append(_group_index(name, group_names))
        i = end
    if text:
        parts.append("".join(text))
    return tuple(parts)


def _extract(s: str, i: int) -> tuple[str, int] | None:
    """The reference name at ``s[i:]`` and where it ends (Go's ``extract``)."""
    brace = i < len(s) and s[i] == "{"
    j = i + 1 if brace else i
    k = j
    while k < len(s) and (s[k].isalpha() or s[k].isdecimal() or s[k] == "_"):
        k += 1
    if k == j:
        return None
    name = s[j:k]
    if brace:
        if k >= len(s) or s[k] != "}":
            return None
        k += 1
    return name, k


def _group_index(name: str, group_names: dict[str, int]) -> int:
    if name.isascii() and name.isdigit():
        if (len(name) > 1 and name[0] == "0") or len(name) > 9:  # Go: then it is a name
            return -1
        return int(name)
    return group_names.get(name, -1)


def expand(template: Template, groups: Groups) -> str:
    out = []
    ng = len(groups)
    for p in template:
        if isinstance(p, str):
            out.append(p)
        elif 0 <= p < ng:
            g = groups[p]
            if g:
                out.append(g)
    return "".join(out)
