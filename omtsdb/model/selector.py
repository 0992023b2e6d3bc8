"""Series selectors outside PromQL (``--match`` flags, ``match[]``): ``name{l="v", m=~"re"}``.

This is the subset of PromQL that names series; it is what ``promtool`` and the API accept for
``--match``/``match[]``.
"""

from __future__ import annotations

from omtsdb.errors import ParseError
from omtsdb.model.labels import METRIC_NAME
from omtsdb.model.matchers import Matcher, MatchType

_OPS = ("=~", "!~", "!=", "=")


def _err(text: str, i: int, msg: str) -> ParseError:
    return ParseError(f"1:{i + 1}: parse error: {msg}", line=1, column=i + 1, start=i)


def _ws(s: str, i: int) -> int:
    while i < len(s) and s[i] in " \t\n\r":
        i += 1
    return i


def _name(s: str, i: int, metric: bool) -> tuple[str, int]:
    j = i
    while j < len(s) and (
        s[j].isascii() and (s[j].isalnum() or s[j] == "_" or (metric and s[j] == ":"))
    ):
        j += 1
    if j == i or s[i].isdigit():
        raise _err(s, i, "expected a label name")
    return s[i:j], j


def _string(s: str, i: int) -> tuple[str, int]:
    q = s[i]
    if q not in "\"'`":
        raise _err(s, i, "expected a quoted string")
    j = i + 1
    out: list[str] = []
    while j < len(s):
        c = s[j]
        if c == q:
            return "".join(out), j + 1
        if c == "\\" and q != "`" and j + 1 < len(s):
            nx = s[j + 1]
            simple = {
                "n": "\n",
                "t": "\t",
                "r": "\r",
                "\\": "\\",
                '"': '"',
                "'": "'",
                "a": "\a",
                "b": "\b",
                "f": "\f",
                "v": "\v",
            }
            if nx in simple:
                out.append(simple[nx])
                j += 2
                continue
            if nx in "xuU":
                width = {"x": 2, "u": 4, "U": 8}[nx]
                hexs = s[j + 2 : j + 2 + width]
                try:
                    out.append(chr(int(hexs, 16)))
                except ValueError:
                    raise _err(s, j, "invalid escape sequence") from None
                j += 2 + width
                continue
            raise _err(s, j, "invalid escape sequence")
        out.append(c)
        j += 1
    raise _err(s, i, "unterminated quoted string")


def parse_selector(text: str, *, allow_empty: bool = False) -> list[Matcher]:
    """Parse a series selector into matchers. Raises ParseError."""
    s = text
    i = _ws(s, 0)
    matchers: list[Matcher] = []
    if i < len(s) and s[i] != "{":
        name, i = _name(s, i, True)
        matchers.append(Matcher(MatchType.EQ, METRIC_NAME, name))
        i = _ws(s, i)
    if i < len(s) and s[i] == "{":
        i = _ws(s, i + 1)
        while i < len(s) and s[i] != "}":
            if s[i] in "\"'`":
                lname, i = _string(s, i)
                j = _ws(s, i)
                if j < len(s) and s[j] in ",}":
                    matchers.append(Matcher(MatchType.EQ, METRIC_NAME, lname))
                    i = j
                    if s[i] == ",":
                        i = _ws(s, i + 1)
                    continue
                i = j
            else:
                lname, i = _name(s, i, False)
                i = _ws(s, i)
            op = next((o for o in _OPS if s.startswith(o, i)), None)
            if op is None:
                raise _err(s, i, "expected a label matching operator")
            i = _ws(s, i + len(op))
            if i >= len(s):
                raise _err(s, i, "unexpected end of input")
            val, i = _string(s, i)
            matchers.append(Matcher(MatchType(op), lname, val))
            i = _ws(s, i)
            if i < len(s) and s[i] == ",":
                i = _ws(s, i + 1)
            elif i < len(s) and s[i] != "}":
                raise _err(s, i, "expected ',' or '}'")
        if i >= len(s):
            raise _err(s, i, "unexpected end of input inside braces")
        i = _ws(s, i + 1)
    if i != len(s):
        raise _err(s, i, f"unexpected {s[i]!r}")
    if allow_empty:
        return matchers
    if not matchers or all(m.matches_empty for m in matchers):
        raise _err(s, 0, "vector selector must contain at least one non-empty matcher")
    return matchers
