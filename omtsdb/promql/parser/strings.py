"""PromQL string literals: Go's rules for double- and single-quoted strings, raw backticks."""

from __future__ import annotations

_SIMPLE = {
    "a": "\a",
    "b": "\b",
    "f": "\f",
    "n": "\n",
    "r": "\r",
    "t": "\t",
    "v": "\v",
    "\\": "\\",
    '"': '"',
    "'": "'",
}


def unquote(tok: str) -> str:
    q = tok[0]
    body = tok[1:-1]
    if q == "`":
        return body
    if "\\" not in body:
        return body
    out: list[str] = []
    i = 0
    n = len(body)
    while i < n:
        c = body[i]
        if c != "\\":
            out.append(c)
            i += 1
            continue
        if i + 1 >= n:
            raise ValueError("invalid escape sequence")
        e = body[i + 1]
        if e in _SIMPLE:
            if (e == "'" and q == '"') or (e == '"' and q == "'"):
                raise ValueError(f"unknown escape sequence: \\{e}")
            out.append(_SIMPLE[e])
            i += 2
        elif e in "xuU":
            width = {"x": 2, "u": 4, "U": 8}[e]
            h = body[i + 2 : i + 2 + width]
            if len(h) != width or any(ch not in "0123456789abcdefABCDEF" for ch in h):
                raise ValueError("invalid escape sequence")
            cp = int(h, 16)
            if e == "x":
                out.append(_byte(cp))
            else:
                if cp > 0x10FFFF or 0xD800 <= cp <= 0xDFFF:
                    raise ValueError("invalid escape sequence")
                out.append(chr(cp))
            i += 2 + width
        elif e in "01234567":
            o = body[i + 1 : i + 4]
            if len(o) != 3 or any(ch not in "01234567" for ch in o) or int(o, 8) > 255:
                raise ValueError("invalid escape sequence")
            out.append(_byte(int(o, 8)))
            i += 4
        else:
            raise ValueError(f"unknown escape sequence: \\{e}")
    s = "".join(out)
    if any("\udc80" <= c <= "\udcff" for c in s):
        # \x and octal escapes are bytes, as in Go: consecutive ones may spell UTF-8
        # ("\xc3\xbc" is "ü"); bytes that are not UTF-8 stay as surrogate escapes, which
        # label-name checks refuse and the JSON writer prints as U+FFFD, as Go's does
        s = s.encode("utf-8", "surrogateescape").decode("utf-8", "surrogateescape")
    return s


def _byte(b: int) -> str:
    return chr(b) if b < 0x80 else chr(0xDC00 + b)
