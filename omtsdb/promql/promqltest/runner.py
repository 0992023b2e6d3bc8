"""Run ``.test`` scripts against the engine over an in-memory TSDB."""

from __future__ import annotations

import math
import re
import struct
from collections import Counter
from dataclasses import dataclass, field, fields, is_dataclass
from pathlib import Path

import numpy as np

from omtsdb.errors import OmtsdbError
from omtsdb.model.labels import Labels
from omtsdb.model.matchers import matches_all
from omtsdb.model.samples import is_stale_nan
from omtsdb.promql.engine import Engine, EngineOpts
from omtsdb.promql.parser import parse
from omtsdb.promql.parser.ast import VectorSelector
from omtsdb.promql.promqltest.script import Clear, Eval, Histogram, Load, Value, parse_script
from omtsdb.promql.value import Result, Scalar, String
from omtsdb.tsdb.db import DB, DBOptions

EPS = 1e-6
MIN_NORMAL = 2.2250738585072014e-308


def almost_equal(a: float, b: float) -> bool:
    if is_stale_nan(a) or is_stale_nan(b):
        return is_stale_nan(a) and is_stale_nan(b)
    if math.isnan(a) and math.isnan(b):
        return True
    if a == b:
        return True
    if math.isnan(a) or math.isnan(b) or math.isinf(a) or math.isinf(b):
        return False
    d = abs(a - b)
    if a == 0 or b == 0 or abs(a) + abs(b) < MIN_NORMAL:
        return d < EPS * MIN_NORMAL
    return d / min(abs(a) + abs(b), 1.7976931348623157e308) < EPS


@dataclass
class Outcome:
    line: int
    category: str  # pass, fail, native, experimental
    reason: str = ""


@dataclass
class FileReport:
    path: str
    outcomes: list[Outcome] = field(default_factory=list)

    def count(self, cat: str) -> int:
        return sum(1 for o in self.outcomes if o.category == cat)


class Store:
    def __init__(self) -> None:
        self.db = DB.open(None, DBOptions(require_metric_name=False))
        self.has_histograms: set[Labels] = set()

    def load(self, cmd: Load) -> None:
        series: dict[Labels, list[Value]] = {}
        for lb, vals in cmd.series:
            series[lb] = vals
            if cmd.nhcb:  # the converted native histograms are stored under the base name
                for suffix in ("_bucket", "_count", "_sum"):
                    if lb.name.endswith(suffix):
                        self.has_histograms.add(Labels({"__name__": lb.name[: -len(suffix)]}))
        app = self.db.appender()
        for lb, vals in series.items():
            slots = [i for i, v in enumerate(vals) if isinstance(v, float)]
            ts = [i * cmd.interval for i in slots]
            vs = [vals[i] for i in slots]
            if any(isinstance(v, Histogram) for v in vals):
                self.has_histograms.add(lb)
            offs = cmd.starts.get(lb)
            st = None
            if offs is not None:  # the slot's time plus its offset; no offset: unknown (0)
                st = np.array(
                    [
                        0 if (o := offs[i]) is None else t + o
                        for i, t in zip(slots, ts, strict=True)
                    ],
                    np.int64,
                )
            if ts:
                app.append(lb, np.array(ts, np.int64), np.array(vs, np.float64), st)
        app.commit()


def _check_annotations(ev: Eval, res: Result) -> str | None:
    for kind, got in (("warn", res.warnings), ("info", res.infos)):
        exp = [x for x in ev.expects if x.kind == kind]
        if ev.has(f"no_{kind}") and got:
            return f"unexpected {kind}: {got}"
        if exp:
            if not got:
                return f"expected {kind}, got none"
            for x in exp:
                if x.text is not None and not any(_match(x.how, x.text, g) for g in got):
                    return f"{kind} {x.text!r} not in {got}"
    return None


def _match(how: str | None, text: str, got: str) -> bool:
    if how == "regex":
        return re.search(text, got) is not None
    return got == text


def _fmt(lb: Labels) -> str:
    return lb.to_promql() if lb else "{}"


def check(ev: Eval, res: Result) -> str | None:
    v = res.value
    if ev.string is not None:
        if not isinstance(v, String) or v.v != ev.string:
            return f"expected string {ev.string!r}, got {v!r}"
        return None
    if ev.scalar is not None:
        if not isinstance(v, Scalar):
            return f"expected scalar {ev.scalar}, got {type(v).__name__}"
        return None if almost_equal(ev.scalar, v.v) else f"scalar {v.v} != {ev.scalar}"
    if isinstance(v, Scalar | String):
        return f"expected a vector or matrix, got {type(v).__name__}"
    if ev.instant and ev.range_vector is None:
        got = {}
        for s in v:
            if not hasattr(s, "t"):
                return "expected a vector, got a matrix"
            if s.labels in got:
                return f"duplicate series {_fmt(s.labels)}"
            got[s.labels] = s.v  # type: ignore[union-attr]
        want = {lb: vals for lb, vals in ev.series}
        for lb, vals in want.items():
            if lb not in got:
                return f"missing series {_fmt(lb)}"
            if len(vals) != 1 or not isinstance(vals[0], float):
                return "bad expectation"
            if not almost_equal(vals[0], got[lb]):
                return f"{_fmt(lb)}: got {got[lb]}, want {vals[0]}"
        for lb in got:
            if lb not in want:
                return f"unexpected series {_fmt(lb)}"
        if ev.has("ordered"):
            order = [s.labels for s in v]
            if order != [lb for lb, _ in ev.series]:
                return "wrong order"
        return None
    # matrix
    start, step = (
        (ev.range_vector[0], ev.range_vector[2]) if ev.range_vector else (ev.start, ev.step)
    )
    got_m = {}
    for s in v:
        if hasattr(s, "t"):
            return "expected a matrix, got a vector"
        got_m[s.labels] = s
    keys = [s.labels for s in v]
    if keys != sorted(keys, key=lambda lb: lb.sort_key()):
        return "matrix not sorted by labels"
    want_m = {lb: vals for lb, vals in ev.series}
    for lb, vals in want_m.items():
        got_s = got_m.get(lb)
        if got_s is None:
            return f"missing series {_fmt(lb)}"
        s = got_s
        wts = [start + i * step for i, x in enumerate(vals) if isinstance(x, float)]
        wvs = [x for x in vals if isinstance(x, float)]
        if s.ts.tolist() != wts:
            return f"{_fmt(lb)}: timestamps {s.ts.tolist()} != {wts}"
        for a, b in zip(wvs, s.vs.tolist(), strict=True):
            if not almost_equal(a, b):
                return f"{_fmt(lb)}: got {s.vs.tolist()}, want {wvs}"
    for lb in got_m:
        if lb not in want_m:
            return f"unexpected series {_fmt(lb)}"
    return None


def _experimental_only(expr: str) -> bool:
    try:
        parse(expr)
    except OmtsdbError:
        try:
            parse(expr, experimental=True)
        except OmtsdbError:
            return False
        return True
    return False


def run_eval(engine: Engine, store: Store, ev: Eval) -> Outcome:
    native = ev.uses_histograms
    try:
        if ev.instant:
            t = ev.range_vector[1] if ev.range_vector else ev.at
            res = engine.instant_query(store.db, ev.expr, t)
        else:
            res = engine.range_query(store.db, ev.expr, ev.start, ev.end, ev.step)
    except OmtsdbError as e:
        if ev.has("fail"):
            x = next(x for x in ev.expects if x.kind == "fail")
            if x.text is not None and not _match(x.how, x.text, str(e)):
                return Outcome(ev.line, "fail", f"error {str(e)!r} != expected {x.text!r}")
            return Outcome(ev.line, "pass")
        cat = "native" if native else ("experimental" if _experimental_only(ev.expr) else "fail")
        return Outcome(ev.line, cat, f"unexpected error: {e}")
    except Exception as e:  # an engine bug: report, never crash the run
        return Outcome(ev.line, "fail", f"crash: {type(e).__name__}: {e}")
    if ev.has("fail"):
        return Outcome(ev.line, "native" if native else "fail", "expected an error")
    reason = check(ev, res) or _check_annotations(ev, res)
    if reason is None:
        return Outcome(ev.line, "pass")
    if native:
        return Outcome(ev.line, "native", reason)
    if _experimental_only(ev.expr):
        return Outcome(ev.line, "experimental", reason)
    return Outcome(ev.line, "fail", reason)


def run_file(path: Path) -> FileReport:
    rep = FileReport(str(path))
    engine = Engine(
        EngineOpts(
            enable_experimental_functions=True,
            enable_experimental_syntax=True,
            enable_delayed_name_removal=True,
            default_eval_interval_ms=60_000,
        )
    )
    cmds = parse_script(path.read_text())
    store = Store()
    for cmd in cmds:
        if isinstance(cmd, Clear):
            store = Store()
        elif isinstance(cmd, Load):
            store.load(cmd)
        else:
            out = run_eval(engine, store, cmd)
            if out.category == "fail" and cmd.uses_histograms:
                out.category = "native"
            if out.category == "fail" and _touches_histograms(store, cmd):
                out.category = "native"
            rep.outcomes.append(out)
    return rep


def _touches_histograms(store: Store, ev: Eval) -> bool:
    """Whether the eval reads a series that was loaded with native-histogram samples: by name
    in the text, or through any selector of the expression matching such a series."""
    if not store.has_histograms:
        return False
    names = {lb.name for lb in store.has_histograms}
    if any(re.search(r"\b" + re.escape(n) + r"\b", ev.expr) for n in names if n):
        return True
    try:
        expr = parse(ev.expr, experimental=True)
    except OmtsdbError:
        return False
    return any(
        matches_all(sel.matchers, lb) for sel in _selectors(expr) for lb in store.has_histograms
    )


def _selectors(node: object) -> list[VectorSelector]:
    if isinstance(node, VectorSelector):
        return [node]
    out: list[VectorSelector] = []
    if is_dataclass(node):
        for f in fields(node):
            v = getattr(node, f.name)
            for x in v if isinstance(v, tuple | list) else (v,):
                if is_dataclass(x):
                    out.extend(_selectors(x))
    return out


def summarize(reports: list[FileReport]) -> Counter[str]:
    c: Counter[str] = Counter()
    for r in reports:
        for o in r.outcomes:
            c[o.category] += 1
    return c


def _bits(v: float) -> int:
    return int(struct.unpack("<Q", struct.pack("<d", v))[0])
