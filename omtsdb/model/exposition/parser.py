"""Parser for the Prometheus text format 0.0.4 and OpenMetrics 1.0 text.

The result is array-shaped for bulk ingest: unique series in first-seen order, and per sample
its series index, timestamp and value as numpy arrays. Lines repeat the same series text many
times in scrapes and imports, so the text before the value is looked up in a cache and only new
series text goes through the careful label parser.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import numpy.typing as npt

from omtsdb.errors import ParseError
from omtsdb.model.exposition.floats import NORMAL_NAN, parse_float
from omtsdb.model.labels import METRIC_NAME, Labels
from omtsdb.model.samples import F64, I64

Format = Literal["text", "openmetrics"]
NO_TS = np.iinfo(np.int64).min  # in ``ts`` where a line had no timestamp

TEXT_TYPES = {"counter", "gauge", "histogram", "summary", "untyped"}
OM_TYPES = {
    "counter",
    "gauge",
    "histogram",
    "gaugehistogram",
    "summary",
    "info",
    "stateset",
    "unknown",
}


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
    """Collects series indexes and raw value/timestamp tokens; ``arrays`` converts the
    tokens in bulk (C loops) and falls back to per-token parsing only to report an error or
    for the rare token float() does not take (hex, NaN payloads)."""

    def __init__(self, fmt: Format, known: dict[str, Labels] | None = None) -> None:
        self.fmt: Format = fmt
        self.known = known  # series text -> labels, kept by the caller across parses
        self.cache: dict[str, int] = {}
        self.series: list[Labels] = []
        self.idx: list[int] = []
        self.vtok: list[str] = []
        self.ttok: list[str] = []  # "" where the line had no timestamp
        self.lno: list[int] = []
        self.meta: dict[str, MetricMeta] = {}
        self.eof = False
        self.line_base = 0  # line number before the first of the current slice

    def series_index(self, key: str) -> int:
        got = self.cache.get(key)
        if got is not None:
            return got
        known = self.known
        lb = known.get(key) if known is not None else None
        if lb is None:
            lb, end = parse_series(key)
            if end != len(key):
                raise _Err(end, "unexpected text after the label set")
            if known is not None:
                known[key] = lb
        k = self.cache[key] = len(self.series)
        self.series.append(lb)
        return k

    def sample(self, line: str, lineno: int) -> None:
        """Fast path: ``series value timestamp`` split from the right; anything unusual goes
        through the careful path."""
        parts = line.rsplit(" ", 2)
        if len(parts) == 2:  # no timestamp: ``series value``
            parts.append("")
        if len(parts) == 3 and parts[1] and (parts[2] or " " not in parts[0]):
            k = self.cache.get(parts[0])
            if k is None:
                try:
                    k = self.series_index(parts[0])
                except _Err:
                    k = None
            if k is not None:
                self.idx.append(k)
                self.vtok.append(parts[1])
                self.ttok.append(parts[2])
                self.lno.append(lineno)
                return
        self.sample_slow(line, lineno)

    def sample_slow(self, line: str, lineno: int) -> None:
        lb, i = parse_series(line)
        key = line[:i]
        k = self.cache.get(key)
        if k is None:
            k = self.cache[key] = len(self.series)
            self.series.append(lb)
        rest_text = line[i:]
        if self.fmt == "openmetrics" and " # " in rest_text:
            rest_text = rest_text[: rest_text.index(" # ")]  # exemplar: parsed away
        rest = rest_text.split()
        if not rest:
            raise _Err(i, "expected a value after the series")
        if len(rest) > 2:
            raise _Err(i, f"unexpected text after the timestamp: {rest[2]!r}")
        self.idx.append(k)
        self.vtok.append(rest[0])
        self.ttok.append(rest[1] if len(rest) == 2 else "")
        self.lno.append(lineno)

    def values(self, lines: list[str]) -> F64:
        toks = self.vtok
        try:
            if "_" in "".join(toks):
                raise ValueError
            vs = np.array(toks, dtype=np.float64)
        except ValueError:
            vs = np.empty(len(toks), np.float64)
            for i, tok in enumerate(toks):
                try:
                    vs[i] = parse_float(tok)
                except ValueError:
                    line = lines[self.lno[i] - 1 - self.line_base]
                    col = line.rfind(tok) if tok else len(line)
                    raise ParseError(
                        f"line {self.lno[i]}, column {col + 1}: invalid value {tok!r}",
                        line=self.lno[i],
                        column=col + 1,
                    ) from None
            return vs
        nan = np.isnan(vs)
        if nan.any():  # float() gives Python's NaN; Prometheus stores Go's NaN bits
            vs[nan] = NORMAL_NAN
        return vs

    def timestamps(self, lines: list[str]) -> I64:
        toks = self.ttok
        n = len(toks)
        missing = np.fromiter((not t for t in toks), np.bool_, n) if n else np.zeros(0, bool)
        present = [t for t in toks if t] if missing.any() else toks
        joined = "".join(present)
        try:
            if "_" in joined or "n" in joined.lower() or "x" in joined.lower():
                raise ValueError
            if self.fmt == "openmetrics":
                f = np.array(present, dtype=np.float64) * 1000.0
                if not np.all(np.isfinite(f)):
                    raise ValueError
                # Exact for millisecond text (Prometheus truncates ``ts*1000``, which turns
                # 1.001 into 1000 ms); sub-millisecond input truncates as Prometheus does.
                r = np.rint(f)
                got = np.where(np.abs(f - r) < 0.01, r, np.trunc(f)).astype(np.int64)
            else:
                if "." in joined or "e" in joined.lower():
                    raise ValueError
                got = np.array(present, dtype=np.int64)
        except (ValueError, OverflowError):
            self._ts_error(lines)
            raise AssertionError("unreachable") from None
        if not missing.any():
            return got
        out = np.full(n, NO_TS, np.int64)
        out[~missing] = got
        return out

    def _ts_error(self, lines: list[str]) -> None:
        for i, tok in enumerate(self.ttok):
            if not tok:
                continue
            try:
                if self.fmt == "openmetrics":
                    if not math.isfinite(parse_float(tok)) or "_" in tok:
                        raise ValueError
                elif not tok.lstrip("+-").isdigit():
                    raise ValueError
                else:
                    int(tok)
            except ValueError:
                line = lines[self.lno[i] - 1 - self.line_base]
                col = line.rfind(tok)
                raise ParseError(
                    f"line {self.lno[i]}, column {col + 1}: invalid timestamp {tok!r}",
                    line=self.lno[i],
                    column=col + 1,
                ) from None
        raise ParseError("invalid timestamp")

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


SLICE = 8 * 2**20  # parse in slices of whole lines: bounded temporaries on big imports


def _slices(data: str | bytes) -> Iterator[tuple[str | bytes, int]]:
    """(slice, number of its first line) for slices of whole lines of about SLICE bytes."""
    nl: str | bytes = "\n" if isinstance(data, str) else b"\n"
    pos, line, n = 0, 1, len(data)
    while True:
        end = data.find(nl, pos + SLICE) if pos + SLICE < n else -1  # type: ignore[arg-type]
        if end < 0:
            yield data[pos:], line
            return
        part = data[pos:end]
        yield part, line
        line += part.count(nl) + 1  # type: ignore[arg-type]
        pos = end + 1


def parse(
    data: str | bytes,
    fmt: Format | None = None,
    *,
    content_type: str = "",
    known_series: dict[str, Labels] | None = None,
) -> Exposition:
    """Parse a whole exposition. Raises ParseError naming the line and column (1-based) of the
    first problem; nothing is returned for malformed input. ``known_series`` (series text ->
    labels) lets a caller that parses similar texts again and again, like a scrape loop, skip
    the label parser for series it has seen; new series are added to it."""
    if isinstance(data, bytearray | memoryview):
        data = bytes(data)
    tail = data[-64:]
    if isinstance(tail, bytes):
        tail = tail.decode("utf-8", "replace")
    fmt = fmt or detect_format(tail, content_type)
    b = _Builder(fmt, known_series)
    idx_parts: list[npt.NDArray[np.int64]] = []
    ts_parts: list[I64] = []
    vs_parts: list[F64] = []
    lineno = 0
    for part, first in _slices(data):
        if isinstance(part, bytes):
            try:
                text = part.decode("utf-8")
            except UnicodeDecodeError as e:
                bad = first + part[: e.start].count(b"\n")
                raise ParseError(f"line {bad}: invalid UTF-8", line=bad) from None
        else:
            text = part
        lines = text.split("\n")
        lineno = _parse_lines(b, lines, first)
        b.line_base = first - 1
        idx_parts.append(np.array(b.idx, np.int64))
        ts_parts.append(b.timestamps(lines))
        vs_parts.append(b.values(lines))
        b.idx, b.vtok, b.ttok, b.lno = [], [], [], []
    if fmt == "openmetrics" and not b.eof:
        raise ParseError(f"line {lineno}: missing # EOF at the end", line=lineno)
    return Exposition(
        b.series,
        np.concatenate(idx_parts) if len(idx_parts) > 1 else idx_parts[0],
        np.concatenate(ts_parts) if len(ts_parts) > 1 else ts_parts[0],
        np.concatenate(vs_parts) if len(vs_parts) > 1 else vs_parts[0],
        b.meta,
        fmt,
    )


def _parse_lines(b: _Builder, lines: list[str], first: int) -> int:
    """Feed ``lines`` (the first numbered ``first``) to the builder; returns the last line
    number seen."""
    lineno = first - 1
    sample = b.sample
    cache_get = b.cache.get
    known_get = b.known.get if b.known is not None else None
    series = b.series
    idx_add, v_add, t_add, l_add = b.idx.append, b.vtok.append, b.ttok.append, b.lno.append
    try:
        for lineno, line in enumerate(lines, first):
            if not line:
                continue
            c = line[0]
            if c != "#" and c != " " and c != "\t" and line[-1] != "\r" and not b.eof:
                # Hot path inlined: a known series text, a value and a timestamp.
                parts = line.rsplit(" ", 2)
                n = len(parts)
                if n >= 2:
                    key = parts[0]
                    k = cache_get(key)
                    if k is None and known_get is not None:
                        lb = known_get(key)
                        if lb is not None:  # seen in an earlier parse: no label parsing
                            k = b.cache[key] = len(series)
                            series.append(lb)
                    if k is not None and parts[1] and (n == 2 or parts[2]):
                        idx_add(k)
                        v_add(parts[1])
                        t_add(parts[2] if n == 3 else "")
                        l_add(lineno)
                        continue
                sample(line, lineno)
                continue
            if b.eof:
                if line.strip():
                    raise _Err(0, "unexpected data after # EOF")
                continue
            if c == "#":
                b.comment(line)
            elif c in " \t\r":
                stripped = line.strip(" \t\r")
                if not stripped:
                    continue
                if stripped.startswith("#"):
                    b.comment(stripped)
                else:
                    b.sample_slow(stripped, lineno)
            elif line[-1] == "\r":
                sample(line[:-1], lineno)
            else:
                sample(line, lineno)
    except _Err as e:
        raise ParseError(
            f"line {lineno}, column {e.col + 1}: {e.msg}", line=lineno, column=e.col + 1
        ) from None
    return lineno


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
