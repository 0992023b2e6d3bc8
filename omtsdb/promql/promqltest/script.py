"""Parsing Prometheus's PromQL ``.test`` scripts (see shared/conformance/FORMAT.md)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from omtsdb.errors import OmtsdbError
from omtsdb.model.exposition.floats import NORMAL_NAN
from omtsdb.model.labels import Labels
from omtsdb.model.samples import STALE_NAN
from omtsdb.promql.parser import parse_duration, parse_metric

INSTANT_RE = re.compile(r"^eval(?:_(fail|warn|ordered|info))?\s+instant\s+(?:at\s+(.+?))?\s+(.+)$")
RANGE_RE = re.compile(
    r"^eval(?:_(fail|warn|info))?\s+range\s+from\s+(.+)\s+to\s+(.+)\s+step\s+(.+?)\s+(.+)$"
)
LOAD_RE = re.compile(r"^load(?:_(with_nhcb))?\s+(.+?)$")
EXPECT_RE = re.compile(
    r"^expect\s+(ordered|fail|warn|no_warn|info|no_info)(?:\s+(regex|msg):(.+))?$"
)
RANGE_VEC_RE = re.compile(r"^expect range vector from\s+(.+)\s+to\s+(.+)\s+step\s+(.+)$")
STRING_RE = re.compile(r"^expect string\s+(.+)$")


class Histogram:
    """Marker for a native-histogram sample (not supported: such evals are counted apart)."""


Value = float | None | Histogram  # None: an empty slot


@dataclass
class Expectation:
    kind: str
    how: str | None = None
    text: str | None = None


@dataclass
class Eval:
    line: int
    expr: str
    instant: bool
    at: int = 0
    start: int = 0
    end: int = 0
    step: int = 0
    expects: list[Expectation] = field(default_factory=list)
    series: list[tuple[Labels, list[Value]]] = field(default_factory=list)
    scalar: float | None = None
    string: str | None = None
    range_vector: tuple[int, int, int] | None = None
    uses_histograms: bool = False

    def has(self, kind: str) -> bool:
        return any(x.kind == kind for x in self.expects)


Starts = list[int | None]  # per value slot: start-timestamp offset (ms) from the slot's time


@dataclass
class Load:
    line: int
    interval: int
    series: list[tuple[Labels, list[Value]]]
    nhcb: bool = False
    # start-timestamp offsets of series given by an ``@st`` line (FORMAT.md §3.6)
    starts: dict[Labels, Starts] = field(default_factory=dict)


@dataclass
class Clear:
    line: int


Command = Load | Clear | Eval


def _number(tok: str) -> float:
    low = tok.lower()
    if low in ("nan", "+nan", "-nan"):
        return NORMAL_NAN
    if low in ("inf", "+inf"):
        return float("inf")
    if low == "-inf":
        return float("-inf")
    if low.startswith(("0x", "+0x", "-0x")):
        raise ValueError(tok)
    return float(tok)


_ITEM_RE = re.compile(r"^([-+]?[^-+x]+?)(?:([-+])([^x]+))?x([0-9]+)$")


def expand_values(items: list[str]) -> list[Value]:
    out: list[Value] = []
    i = 0
    while i < len(items):
        tok = items[i]
        i += 1
        if tok.startswith("{{"):
            # a native histogram item may contain spaces: consume until the closing braces
            while tok.count("{{") > tok.count("}}") and i < len(items):
                tok += " " + items[i]
                i += 1
            reps = 1
            m = re.search(r"\}\}x([0-9]+)$", tok)
            if m:
                reps = int(m.group(1)) + 1
            out += [Histogram()] * reps
            continue
        if tok == "_":
            out.append(None)
            continue
        if tok.startswith("_x"):
            out += [None] * int(tok[2:])
            continue
        if tok == "stale":
            out.append(STALE_NAN)
            continue
        m = _ITEM_RE.match(tok)
        if m and not tok.lower().endswith(("inf", "nan")):
            a = _number(m.group(1))
            k = int(m.group(4))
            if m.group(2):
                b = _number(m.group(3)) * (1 if m.group(2) == "+" else -1)
                v = a
                for _ in range(k + 1):
                    out.append(v)
                    v += b
            else:
                out += [a] * (k + 1)
            continue
        out.append(_number(tok))
    return out


def _split_series(line: str) -> tuple[str, list[str]]:
    """Series text and value items; the series may contain spaces inside braces."""
    depth = 0
    in_str = None
    for i, c in enumerate(line):
        if in_str:
            if c == "\\":
                continue
            if c == in_str and line[i - 1] != "\\":
                in_str = None
            continue
        if c in "\"'`":
            in_str = c
        elif c == "{":
            depth += 1
        elif c == "}":
            depth -= 1
        elif c in " \t" and depth == 0:
            return line[:i], line[i:].split()
    return line, []


_DUR_PREFIX_RE = re.compile(r"^([-+]?)([0-9]+[a-wyzA-Z]*)(.*)$")


def _duration_prefix(tok: str) -> tuple[int, str]:
    """A signed duration at the start of ``tok`` (one number and unit, no ``x`` in the unit)
    and the rest of ``tok``."""
    m = _DUR_PREFIX_RE.match(tok)
    if not m:
        raise ValueError(f"expected a duration in {tok!r}")
    ms = parse_duration(m.group(2))
    return (-ms if m.group(1) == "-" else ms), m.group(3)


def _repeat(rest: str) -> int:
    if not rest.startswith("x") or not rest[1:].isdigit():
        raise ValueError(f"expected x<count>, got {rest!r}")
    return int(rest[1:])


def expand_starts(items: list[str]) -> Starts:
    """The slots of an ``@st`` line: ``_``, ``_xK`` (K slots), ``<dur>``, ``<dur>xK`` (K+1
    slots), ``<dur>±<dur>xK`` (K+1 slots, stepping)."""
    out: Starts = []
    for tok in items:
        if tok == "_":
            out.append(None)
            continue
        if tok.startswith("_x"):
            k = _repeat(tok[1:])
            if k == 0:
                raise ValueError("invalid repeat count")
            out += [None] * k
            continue
        base, rest = _duration_prefix(tok)
        if not rest:
            out.append(base)
        elif rest[0] == "x":
            out += [base] * (_repeat(rest) + 1)
        elif rest[0] in "+-":
            step, rest2 = _duration_prefix(rest[1:])
            step = -step if rest[0] == "-" else step
            out += [base + i * step for i in range(_repeat(rest2) + 1)]
        else:
            raise ValueError(f"bad start-timestamp item {tok!r}")
    return out


def _parse_load_block(
    block: list[tuple[int, str]],
) -> tuple[list[tuple[Labels, list[Value]]], dict[Labels, Starts]]:
    series: list[tuple[Labels, list[Value]]] = []
    starts: dict[Labels, Starts] = {}
    pending: tuple[int, Labels, Starts] | None = None
    for lineno, bl in block:
        head = bl.split()[0]
        if head.endswith("@st"):
            if pending is not None:
                raise ValueError(f"line {pending[0]}: @st line has no following sample line")
            text, items = _split_series(bl)
            try:
                labels = parse_metric(text[: -len("@st")])
            except OmtsdbError as e:
                raise ValueError(f"line {lineno}: bad @st series: {e}") from None
            pending = (lineno, labels, expand_starts(items))
            continue
        lb, vals = parse_series_line(bl)
        if pending is not None:
            pl, plb, pst = pending
            if plb != lb:
                raise ValueError(f"line {pl}: @st metric does not match the following sample line")
            if len(pst) != len(vals):
                raise ValueError(
                    f"line {pl}: @st line has {len(pst)} values but sample line has {len(vals)}"
                )
            starts[lb] = pst
            pending = None
        series.append((lb, vals))
    if pending is not None:
        raise ValueError(f"line {pending[0]}: @st line has no following sample line")
    return series, starts


def parse_series_line(line: str) -> tuple[Labels, list[Value]]:
    text, items = _split_series(line)
    try:
        labels = parse_metric(text)
    except OmtsdbError as e:
        raise ValueError(f"bad series {text!r}: {e}") from None
    return labels, expand_values(items)


def parse_script(text: str) -> list[Command]:
    lines = [ln.strip() for ln in text.split("\n")]
    cmds: list[Command] = []
    i = 0
    while i < len(lines):
        ln = lines[i]
        if not ln or ln.startswith("#"):
            i += 1
            continue
        start = i
        block = []
        i += 1
        word = ln.split()[0].lower()
        if word == "clear":  # takes no block: a load may follow on the next line
            cmds.append(Clear(start + 1))
            continue
        while i < len(lines) and lines[i] and not lines[i].startswith("#"):
            block.append((i + 1, lines[i]))
            i += 1
        if word.startswith("load"):
            m = LOAD_RE.match(ln)
            if not m:
                raise ValueError(f"line {start + 1}: bad load")
            series, starts = _parse_load_block(block)
            cmds.append(
                Load(start + 1, parse_duration(m.group(2)), series, bool(m.group(1)), starts)
            )
        elif word.startswith("eval"):
            cmds.append(_parse_eval(start + 1, ln, block))
        else:
            raise ValueError(f"line {start + 1}: invalid command {word!r}")
    return cmds


def _parse_eval(lineno: int, ln: str, block: list[tuple[int, str]]) -> Eval:
    m = INSTANT_RE.match(ln)
    if m:
        ev = Eval(lineno, m.group(3), True, at=parse_duration(m.group(2) or "0"))
        legacy = m.group(1)
    else:
        r = RANGE_RE.match(ln)
        if not r:
            raise ValueError(f"line {lineno}: bad eval")
        ev = Eval(
            lineno,
            r.group(5),
            False,
            start=parse_duration(r.group(2)),
            end=parse_duration(r.group(3)),
            step=parse_duration(r.group(4)),
        )
        legacy = r.group(1)
    if legacy:
        ev.expects.append(Expectation({"ordered": "ordered"}.get(legacy, legacy)))
    for _, bl in block:
        rv = RANGE_VEC_RE.match(bl)
        if rv:
            ev.range_vector = tuple(parse_duration(x.strip()) for x in rv.groups())  # type: ignore[assignment]
            continue
        sm = STRING_RE.match(bl)
        if sm:
            from omtsdb.promql.parser.strings import unquote

            ev.string = unquote(sm.group(1).strip())
            continue
        if bl.split()[0] == "expect":
            em = EXPECT_RE.match(bl)
            if not em:
                raise ValueError(f"line {lineno}: bad expect line {bl!r}")
            ev.expects.append(
                Expectation(em.group(1), em.group(2), em.group(3).strip() if em.group(3) else None)
            )
            continue
        if bl.split()[0] in ("expected_fail_message", "expected_fail_regexp"):
            how = "msg" if bl.startswith("expected_fail_message") else "regex"
            ev.expects.append(Expectation("fail", how, bl.split(None, 1)[1]))
            continue
        try:
            ev.scalar = _number(bl) if not bl.lower().startswith("0x") else float(int(bl, 16))
            continue
        except ValueError:
            pass
        labels, vals = parse_series_line(bl)
        if any(isinstance(v, Histogram) for v in vals):
            ev.uses_histograms = True
        ev.series.append((labels, vals))
    return ev
