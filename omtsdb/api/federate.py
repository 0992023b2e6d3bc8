"""``/federate``: the newest sample of every series matching any ``match[]`` selector, in the
exposition format, as Prometheus 3.5 serves it.

- the window is the engine's lookback delta before now, inclusive at both ends as Prometheus's
  querier is (``now - lookback <= t <= now``); series whose newest sample in it is a staleness
  marker are left out;
- several ``match[]`` are unioned; none gives an empty 200; a bad one a 400 in plain text;
- families are sorted by metric name (series within one in label order), each ``# TYPE name
  untyped`` (no HELP), timestamps in milliseconds;
- external labels are appended to every series that lacks them, sorted by name, ``instance=""``
  among them when no external label is called ``instance``; a series' own label wins;
- text format 0.0.4 or delimited protobuf, and the name escaping scheme, as the ``Accept``
  header negotiates (see ``model.exposition.negotiate``).

Unlike Prometheus (GET only) a POST with a form body is also accepted.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np
from aiohttp import web

from omtsdb.api.http import params, text_error
from omtsdb.api.runtime import Runtime
from omtsdb.errors import BadDataError, OmtsdbError
from omtsdb.model.exposition.negotiate import PROTO_DELIMITED, Negotiated, escape_name, negotiate
from omtsdb.model.exposition.protobuf import untyped_family_delimited, untyped_metric
from omtsdb.model.exposition.writer import escape_value
from omtsdb.model.labels import METRIC_NAME, Labels, is_legacy_metric_name
from omtsdb.model.matchers import Matcher, MatchType
from omtsdb.model.selector import parse_selector
from omtsdb.obs.metrics import FEDERATION_ERRORS
from omtsdb.obs.registry import format_value
from omtsdb.storage.interface import Queryable

log = logging.getLogger(__name__)
T = TypeVar("T")

STALE_NAN_BITS = 0x7FF0000000000002
_HAS_NAME = Matcher(MatchType.RE, METRIC_NAME, ".+")
_ERROR_HEADERS = {"X-Content-Type-Options": "nosniff"}


@dataclass
class FederateState:
    queryable: Queryable
    runtime: Runtime
    lookback_ms: int
    run: Callable[[Callable[[], Any]], Awaitable[Any]]  # work off the event loop
    clock: Callable[[], float] = time.time  # seconds


FEDERATE: web.AppKey[FederateState] = web.AppKey("omtsdb_federate", FederateState)

Sample = tuple[Labels, int, float]


def _end_of_input(s: str) -> str:
    """Prometheus's error for a selector that is empty or only whitespace."""
    if s == "":
        return "unknown position: parse error: unexpected end of input"
    line = s.count("\n") + 1
    col = len(s) - (s.rfind("\n") + 1) + 1
    return f"{line}:{col}: parse error: unexpected end of input"


def parse_match_params(values: Sequence[str]) -> list[list[Matcher]]:
    """Each ``match[]`` as a matcher list (``BadDataError`` with Prometheus's text when bad)."""
    sets = []
    for s in values:
        if not s.strip():
            raise BadDataError(_end_of_input(s))
        try:
            ms = parse_selector(s, allow_empty=True)
        except OmtsdbError as e:
            raise BadDataError(str(e)) from None
        if all(m.matches_empty for m in ms):
            # Nameless series are never federated, so requiring a name changes nothing and
            # gives the storage a matcher that selects.
            ms = [*ms, _HAS_NAME]
        sets.append(ms)
    return sets


def latest_samples(
    queryable: Queryable, sets: Sequence[Sequence[Matcher]], mint: int, maxt: int
) -> list[Sample]:
    """The newest non-stale sample in [mint, maxt] of every series matching any set, sorted
    by metric name then labels."""
    found: dict[Labels, tuple[int, float]] = {}
    with queryable.querier(mint, maxt) as q:
        for ms in sets:
            for s in q.select(ms, mint, maxt):
                if s.labels in found or len(s) == 0 or not s.labels.get(METRIC_NAME):
                    continue
                last = s.vs[-1:]
                if int(last.view(np.uint64)[0]) == STALE_NAN_BITS:
                    continue
                found[s.labels] = (int(s.ts[-1]), float(last[0]))
    keyed = sorted(found.items(), key=lambda kv: (kv[0].get(METRIC_NAME), kv[0].sort_key()))
    return [(lb, t, v) for lb, (t, v) in keyed]


def _pairs(labels: Labels, external: dict[str, str], ext_names: list[str]) -> list[tuple[str, str]]:
    pairs = [(n, v) for n, v in labels if n != METRIC_NAME and v != ""]
    own = {n for n, _ in pairs}
    pairs += [(n, external[n]) for n in ext_names if n not in own]
    return pairs


def _quoted(name: str) -> str:
    return name if is_legacy_metric_name(name) else f'"{escape_value(name)}"'


def render(samples: Sequence[Sample], external_labels: Labels, neg: Negotiated) -> bytes:
    external = dict(external_labels)
    external.setdefault("instance", "")
    ext_names = sorted(external)
    esc = neg.escaping
    if neg.format == PROTO_DELIMITED:
        return _render_proto(samples, external, ext_names, esc)
    out: list[str] = []
    last = None
    for labels, t, v in samples:
        raw = labels.get(METRIC_NAME)
        name = escape_name(raw, esc)
        if raw != last:
            out.append(f"# TYPE {_quoted(name)} untyped\n")
            last = raw
        body = ",".join(
            f'{_quoted(escape_name(n, esc))}="{escape_value(val)}"'
            for n, val in _pairs(labels, external, ext_names)
        )
        head = name + "{" if is_legacy_metric_name(name) else "{" + _quoted(name) + ","
        out.append(f"{head}{body}}} {format_value(v)} {t}\n")
    return "".join(out).encode()


def _render_proto(
    samples: Sequence[Sample], external: dict[str, str], ext_names: list[str], esc: str
) -> bytes:
    out: list[bytes] = []
    last: str | None = None
    metrics: list[bytes] = []
    for labels, t, v in samples:
        raw = labels.get(METRIC_NAME)
        if raw != last:
            if last is not None:
                out.append(untyped_family_delimited(escape_name(last, esc), metrics))
            last, metrics = raw, []
        pairs = [(escape_name(n, esc), val) for n, val in _pairs(labels, external, ext_names)]
        metrics.append(untyped_metric(pairs, v, t))
    if last is not None:
        out.append(untyped_family_delimited(escape_name(last, esc), metrics))
    return b"".join(out)


async def federate(req: web.Request) -> web.StreamResponse:
    st = req.app[FEDERATE]
    values = (await params(req)).get("match[]", [])
    try:
        sets = parse_match_params(values)
    except OmtsdbError as e:
        return text_error(e, _ERROR_HEADERS)
    neg = negotiate(req.headers.get("Accept", ""))
    now = int(st.clock() * 1000)
    mint, maxt = now - st.lookback_ms, now
    external = st.runtime.external_labels

    def work() -> bytes:
        samples = latest_samples(st.queryable, sets, mint, maxt) if sets else []
        return render(samples, external, neg)

    try:
        body = await st.run(work)
    except Exception as e:  # storage failure: Prometheus answers 500 in plain text
        FEDERATION_ERRORS.inc()
        log.exception("federation failed")
        return text_error(e, _ERROR_HEADERS)
    return web.Response(body=body, headers={"Content-Type": neg.content_type})
