"""``/api/v1/labels``, ``/api/v1/label/<name>/values`` and ``/api/v1/series``: metadata look-ups
with Prometheus's parameters (``match[]``, ``start``, ``end``, ``limit``) and texts.

One querier per request (a context manager), on the query pool within ``--query.timeout``.
The series look-up asks storage for labels only (``SelectHints.func == "series"``: no sample
is decoded) and at most ``limit + 1`` series, to tell whether the answer was truncated.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote_to_bytes

from aiohttp import web

from omtsdb.api.envelope import success
from omtsdb.api.http import Params, json_response, one, params
from omtsdb.api.params import MAX_TIME_MS, MIN_TIME_MS, parse_time
from omtsdb.api.services import SERVICES
from omtsdb.errors import BadDataError, OmtsdbError
from omtsdb.model.labels import Labels, quote_bytes
from omtsdb.model.matchers import Matcher
from omtsdb.model.selector import parse_selector
from omtsdb.storage.interface import SERIES_FUNC, SelectHints

TRUNCATED = "results truncated due to limit"


def _range(p: Params) -> tuple[int, int]:
    s, e = one(p, "start"), one(p, "end")
    return (
        parse_time("start", s) if s else MIN_TIME_MS,
        parse_time("end", e) if e else MAX_TIME_MS,
    )


def _matchers(p: Params, wrap: bool = False) -> list[list[Matcher]]:
    out = []
    for m in p.get("match[]", []):
        try:
            ms = parse_selector(m, allow_empty=True)
        except OmtsdbError as e:
            raise BadDataError(f'invalid parameter "match[]": {e}' if wrap else str(e)) from None
        if all(x.matches_empty for x in ms):
            raise BadDataError(
                'invalid parameter "match[]": match[] must contain at least one non-empty matcher'
            )
        out.append(ms)
    return out


def _limit(p: Params) -> int:
    lim = one(p, "limit")
    if lim is None:
        return 0
    try:
        n = int(lim)
    except ValueError:
        raise BadDataError(
            f'invalid parameter "limit": strconv.Atoi: parsing "{lim}": invalid syntax'
        ) from None
    if n < 0:
        raise BadDataError('invalid parameter "limit": limit must be non-negative')
    return n


def _answer(items: list[Any], limit: int, warnings: list[str]) -> web.Response:
    if limit and len(items) > limit:
        items, warnings = items[:limit], [*warnings, TRUNCATED]
    return json_response(success(items, warnings or None))


async def labels(req: web.Request) -> web.Response:
    svc = req.app[SERVICES]
    p = await params(req)
    mint, maxt = _range(p)
    sets = _matchers(p) or [[]]
    lim = _limit(p)

    def work() -> tuple[list[str], list[str]]:
        with svc.queryable.querier(mint, maxt) as q:
            names: set[str] = set()
            for ms in sets:
                names.update(q.label_names(ms, mint, maxt))
            return sorted(names), q.warnings()

    names, warnings = await svc.query.run(work)
    return _answer(names, lim, warnings)


async def label_values(req: web.Request) -> web.Response:
    svc = req.app[SERVICES]
    p = await params(req)
    name = _label_name_param(req)
    if name.startswith("U__"):
        name = _unescape_name(name[3:])
    mint, maxt = _range(p)
    sets = _matchers(p) or [[]]
    lim = _limit(p)

    def work() -> tuple[list[str], list[str]]:
        with svc.queryable.querier(mint, maxt) as q:
            vals: set[str] = set()
            for ms in sets:
                vals.update(q.label_values(name, ms, mint, maxt))
            return sorted(vals), q.warnings()

    vals, warnings = await svc.query.run(work)
    return _answer(vals, lim, warnings)


def _label_name_param(req: web.Request) -> str:
    """The ``<name>`` path segment; bytes that are not UTF-8 are refused as Prometheus does."""
    raw = req.rel_url.raw_path.split("/")[-2]
    b = unquote_to_bytes(raw)
    try:
        return b.decode("utf-8")
    except UnicodeDecodeError:
        raise BadDataError(f"invalid label name: {quote_bytes(b)}") from None


def _unescape_name(s: str) -> str:
    """Prometheus's ``U__`` label-name escaping: ``__`` is ``_``, ``_XX_`` a code point."""
    out = []
    i = 0
    while i < len(s):
        if s[i] == "_":
            if s.startswith("__", i):
                out.append("_")
                i += 2
                continue
            j = s.find("_", i + 1)
            if j > i:
                try:
                    out.append(chr(int(s[i + 1 : j], 16)))
                    i = j + 1
                    continue
                except ValueError:
                    pass
        out.append(s[i])
        i += 1
    return "".join(out)


async def series(req: web.Request) -> web.Response:
    svc = req.app[SERVICES]
    p = await params(req)
    sets = _matchers(p, wrap=True)
    if not sets:
        raise BadDataError("no match[] parameter provided")
    mint, maxt = _range(p)
    lim = _limit(p)
    # as Prometheus: labels only, and one more than the limit to know the answer was cut
    hints = SelectHints(mint, maxt, func=SERIES_FUNC, limit=lim + 1 if lim else 0)

    def work() -> tuple[list[Labels], list[str]]:
        seen: dict[Labels, None] = {}
        warned: dict[str, None] = {}
        with svc.queryable.querier(mint, maxt) as q:
            for ms in sets:
                batch = q.select_batch(ms, mint, maxt, hints)
                seen.update(dict.fromkeys(batch.labels))
                warned.update(dict.fromkeys(batch.warnings))
            warned.update(dict.fromkeys(q.warnings()))
        found = sorted(seen, key=lambda lb: lb.sort_key())
        return found, list(warned)

    found, warnings = await svc.query.run(work)
    if lim and len(found) > lim:
        found, warnings = found[:lim], [*warnings, TRUNCATED]
    return json_response(success([lb.to_dict() for lb in found], warnings or None))
