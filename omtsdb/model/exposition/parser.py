"""Parser for the Prometheus text format 0.0.4 and OpenMetrics 1.0 text.

The result is array-shaped for bulk ingest: unique series in first-seen order, and per sample
its series index, timestamp and value as numpy arrays. Lines repeat the same series text many
times in scrapes and imports, so the text before the value is looked up in a cache and only new
series text goes through the careful label parser.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from omtsdb.errors import ParseError
from omtsdb.model.exposition.floats import parse_float, parse_ts_seconds
from omtsdb.model.labels import METRIC_NAME, Labels
from omtsdb.model.samples import F64, I64

Format = Literal["text", "openmetrics"]
NO_TS = np.iinfo(np.int64).min  # in ``ts`` where a line had no timestamp

TEXT_TYPES = {"counter", "gauge", "histogram", "summary", "untyped"}
OM_TYPES = {"counter", "gauge", "histogram", "gaugehistogram", "summary", "info", "stateset",
            "unknown"}  # fmt: skip


@dataclass(slots=True)
class MetricMeta:
    type: str = ""
    help: str = ""
    unit: str = ""


@dataclass(slots=True)
class Exposition:
    """Parsed samples: ``series[series_idx[i]]`` has value ``vs[i]`` at ``ts[i]`` (``NO_TS``
    when the line had no timestamp). ``metadata`` maps family names to HELP/TYPE/UNIT."""

    series: list[Labels]
    series_idx: I64
    ts: I64
    vs: F64
    metadata: dict[str, MetricMeta] = field(default_factory=dict)
    format: Format = "text"

    def __len__(self) -> int:
        return int(self.vs.shape[0])

    @property
    def has_timestamps(self) -> bool:
        return bool(self.ts.size) and not bool(np.any(self.ts == NO_TS))


def detect_format(data: str, content_type: str = "") -> Format:
    if "openmetrics" in content_type:
        return "openmetrics"
    if content_type.startswith("text/plain"):
        return "text"
    tail = data.rstrip()[-5:]
    return "openmetrics" if tail == "# EOF" else "text"


class _Err(Exception):
    def __init__(self, col: int, msg: str) -> None:
        self.col = col
        self.msg = msg


def _unescape(s: str, col: int, help_text: bool = False) -> str:
    if "\\" not in s:
        return s
    out = []
    i = 0
    n = len(s)
    while i < n:
        c = s[i]
        if c == "\\" and i + 1 < n:
            nx = s[i + 1]
            if nx == "n":
                out.append("\n")
            elif nx == "\\":
                out.append("\\")
            elif nx == '"' and not help_text:
                out.append('"')
            else:
                out.append("\\" + nx)
            i += 2
            continue
        out.append(c)
        i += 1
    return "".join(out)


def _read_quoted(line: str, i: int) -> tuple[str, int]:
    """``line[i]`` is '"'; return the unescaped string and the index after the closing quote."""
    j = i + 1
    n = len(line)
    while j < n:
        c = line[j]
        if c == "\\":
            j += 2
            continue
        if c == '"':
            return _unescape(line[i + 1 : j], i + 1), j + 1
        if c == "\n":
            break
        j += 1
    raise _Err(i, "unterminated quoted string")


def _is_name_start(c: str, metric: bool) -> bool:
    return c.isascii() and (c.isalpha() or c == "_" or (metric and c == ":"))


def _read_name(line: str, i: int, metric: bool) -> tuple[str, int]:
    n = len(line)
    if i >= n or not _is_name_start(line[i], metric):
        raise _Err(i, "expected a " + ("metric" if metric else "label") + " name")
    j = i + 1
    while j < n:
        c = line[j]
        if c.isascii() and (c.isalnum() or c == "_" or (metric and c == ":")):
            j += 1
        else:
            break
    return line[i:j], j


def _skip_ws(line: str, i: int) -> int:
    n = len(line)
    while i < n and line[i] in " \t":
        i += 1
    return i


def parse_series(line: str) -> tuple[Labels, int]:
    """Parse ``name{labels}`` / ``{"name", labels}`` at the start of ``line``; returns the
    labels and the index after the series text. Raises _Err."""
    i = 0
    name = ""
    n = len(line)
    if i < n and line[i] != "{":
        name, i = _read_name(line, i, True)
    pairs: dict[str, str] = {}
    if i < n and line[i] == "{":
        i += 1
        first = True
        while True:
            i = _skip_ws(line, i)
            if i < n and line[i] == "}":
                i += 1
                break
            if not first:
                if i >= n or line[i] != ",":
                    raise _Err(i, "expected ',' or '}' in label set")
                i = _skip_ws(line, i + 1)
                if i < n and line[i] == "}":
                    i += 1
                    break
            first = False
            if i < n and line[i] == '"':
                lname, i = _read_quoted(line, i)
                j = _skip_ws(line, i)
                if j >= n or line[j] != "=":
                    # a quoted metric name inside the braces
                    if name:
                        raise _Err(j, "metric name given twice")
                    name = lname
                    i = j
                    continue
                i = j
            else:
                lname, i = _read_name(line, i, False)
                i = _skip_ws(line, i)
            if i >= n or line[i] != "=":
                raise _Err(i, f"expected '=' after label name {lname!r}")
            i = _skip_ws(line, i + 1)
            if i >= n or line[i] != '"':
                raise _Err(i, "expected '\"' to start a label value")
            lval, i = _read_quoted(line, i)
            if lname in pairs or (lname == METRIC_NAME and name):
                raise _Err(i, f"duplicate label name {lname!r}")
            pairs[lname] = lval
    if not name:
        raise _Err(0, "missing metric name")
    pairs[METRIC_NAME] = name
    lb = Labels(pairs)
    return lb, i


class _Builder:
    def __init__(self, fmt: Format) -> None:
        self.fmt: Format = fmt
        self.cache: dict[str, int] = {}
        self.series: list[Labels] = []
        self.idx: list[int] = []
        self.ts: list[int] = []
        self.vs: list[float] = []
        self.meta: dict[str, MetricMeta] = {}
        self.eof = False

    def series_index(self, key: str) -> int:
        got = self.cache.get(key)
        if got is not None:
            return got
        lb, end = parse_series(key)
        if end != len(key):
            raise _Err(end, "unexpected text after the label set")
        k = self.cache[key] = len(self.series)
        self.series.append(lb)
        return k

    def sample(self, line: str) -> None:
        if "#" in line or ('"' in line and "}" not in line):
            self.sample_slow(line)
            return
        close = line.rfind("}")
        if close >= 0:
            key = line[: close + 1]
            rest = line[close + 1 :].split()
            vcol = close + 1
        else:
            parts = line.split()
            key = parts[0]
            rest = parts[1:]
            vcol = len(key)
        k = self.series_index(key)
        self.finish(k, rest, vcol, line)

    def sample_slow(self, line: str) -> None:
        lb, i = parse_series(line)
        key = line[:i]
        k = self.cache.get(key)
        if k is None:
            k = self.cache[key] = len(self.series)
            self.series.append(lb)
        rest_text = line[i:]
        if self.fmt == "openmetrics" and " # " in rest_text:
            rest_text = rest_text[: rest_text.index(" # ")]  # exemplar: parsed away
        self.finish(k, rest_text.split(), i, line)

    def finish(self, k: int, rest: list[str], col: int, line: str) -> None:
        if not rest:
            raise _Err(col, "expected a value after the series")
        if len(rest) > 2:
            raise _Err(col, f"unexpected text after the timestamp: {rest[2]!r}")
        try:
            v = parse_float(rest[0])
        except ValueError:
            raise _Err(line.find(rest[0], col), f"invalid value {rest[0]!r}") from None
        t = NO_TS
        if len(rest) == 2:
            tok = rest[1]
            try:
                t = parse_ts_seconds(tok) if self.fmt == "openmetrics" else int(tok)
                if self.fmt == "text" and not tok.lstrip("-").isdigit():
                    raise ValueError(tok)
            except ValueError:
                raise _Err(line.find(tok, col), f"invalid timestamp {tok!r}") from None
        self.idx.append(k)
        self.ts.append(t)
        self.vs.append(v)

    def comment(self, line: str) -> None:
        body = line[1:].lstrip(" \t")
        if self.fmt == "openmetrics" and line.rstrip() == "# EOF":
            self.eof = True
            return
        kw, _, rest = body.partition(" ")
        if kw not in ("HELP", "TYPE", "UNIT"):
            if self.fmt == "openmetrics":
                raise _Err(0, "invalid comment: OpenMetrics allows only HELP, TYPE, UNIT and EOF")
            return
        rest = rest.lstrip(" \t")
        if rest.startswith('"'):
            name, end = _read_quoted(rest, 0)
            text = rest[end:].lstrip(" \t")
        else:
            name, _, text = rest.partition(" ")
            if not name:
                raise _Err(len(line), f"expected a metric name after {kw}")
        meta = self.meta.setdefault(name, MetricMeta())
        if kw == "HELP":
            meta.help = _unescape(text, 0, help_text=self.fmt == "text")
        elif kw == "TYPE":
            t = text.strip()
            allowed = OM_TYPES if self.fmt == "openmetrics" else TEXT_TYPES
            if t not in allowed:
                raise _Err(len(line) - len(text), f"invalid metric type {t!r}")
            meta.type = t
        else:
            if self.fmt != "openmetrics":
                return
            meta.unit = text.strip()


def parse(data: str | bytes, fmt: Format | None = None, *, content_type: str = "") -> Exposition:
    """Parse a whole exposition. Raises ParseError naming the line and column (1-based) of the
    first problem; nothing is returned for malformed input."""
    if isinstance(data, bytes | bytearray | memoryview):
        try:
            text = bytes(data).decode("utf-8")
        except UnicodeDecodeError as e:
            bad = bytes(data)[: e.start].count(b"\n") + 1
            raise ParseError(f"line {bad}: invalid UTF-8", line=bad) from None
    else:
        text = data
    fmt = fmt or detect_format(text, content_type)
    b = _Builder(fmt)
    lineno = 0
    line = ""
    try:
        for lineno, line in enumerate(text.split("\n"), 1):  # noqa: B007
            if b.eof:
                if line.strip():
                    raise _Err(0, "unexpected data after # EOF")
                continue
            if not line or line.isspace():
                continue
            if line[0] == "#":
                b.comment(line)
            elif line[0] in " \t":
                stripped = line.lstrip(" \t")
                if stripped.startswith("#"):
                    b.comment(stripped)
                else:
                    b.sample(stripped)
            else:
                b.sample(line.rstrip("\r"))
    except _Err as e:
        raise ParseError(
            f"line {lineno}, column {e.col + 1}: {e.msg}", line=lineno, column=e.col + 1
        ) from None
    if fmt == "openmetrics" and not b.eof:
        raise ParseError(f"line {lineno}: missing # EOF at the end", line=lineno)
    return Exposition(
        b.series,
        np.array(b.idx, np.int64),
        np.array(b.ts, np.int64),
        np.array(b.vs, np.float64),
        b.meta,
        fmt,
    )


def group_by_series(e: Exposition) -> list[tuple[Labels, I64, F64]]:
    """Samples per series in time order (stable for equal timestamps)."""
    order = np.lexsort((e.ts, e.series_idx))
    idx = e.series_idx[order]
    ts, vs = e.ts[order], e.vs[order]
    bounds = np.flatnonzero(np.diff(idx)) + 1
    starts = np.concatenate(([0], bounds)).astype(np.int64)
    ends = np.concatenate((bounds, [idx.size])).astype(np.int64)
    return [
        (e.series[int(idx[a])], ts[a:b], vs[a:b])
        for a, b in zip(starts.tolist(), ends.tolist(), strict=True)
        if b > a
    ]
