"""``/api/v1/query_exemplars``: parameters validated as Prometheus 3.5 does.

omtsdb keeps no exemplars (remote write and scrapes drop them), so a valid request answers an
empty list, which is what Prometheus answers when its exemplar storage holds none for the query;
an expression without any selector gets 204 No Content, as in Prometheus.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from aiohttp import web

from omtsdb.api.envelope import success
from omtsdb.api.http import params as form_params
from omtsdb.api.params import MAX_TIME_MS, MIN_TIME_MS, parse_time
from omtsdb.errors import BadDataError, OmtsdbError
from omtsdb.promql.parser import parse
from omtsdb.promql.parser.ast import VectorSelector


def _time(name: str, s: str | None, default: int) -> int:
    if s is None or s == "":
        return default
    try:
        return parse_time(name, s)
    except BadDataError as e:
        msg = str(e).replace(f'invalid parameter "{name}": ', "")
        raise BadDataError(
            f"invalid parameter \"{name}\": invalid time value for '{name}': {msg}"
        ) from None


def has_selector(node: Any) -> bool:
    """Does the expression contain a vector selector anywhere?"""
    if isinstance(node, VectorSelector):
        return True
    if dataclasses.is_dataclass(node) and not isinstance(node, type):
        return any(has_selector(getattr(node, f.name)) for f in dataclasses.fields(node))
    if isinstance(node, list | tuple):
        return any(has_selector(x) for x in node)
    return False


async def query_exemplars(req: web.Request) -> web.Response:
    params = {k: v[0] for k, v in (await form_params(req)).items()}
    start = _time("start", params.get("start"), MIN_TIME_MS)
    end = _time("end", params.get("end"), MAX_TIME_MS)
    if end < start:
        raise BadDataError("end timestamp must not be before start timestamp")
    try:
        expr = parse(params.get("query", ""))
    except OmtsdbError as e:
        raise BadDataError(str(e)) from None
    if not has_selector(expr):
        return web.Response(status=204)
    return web.Response(body=success([]), content_type="application/json")
