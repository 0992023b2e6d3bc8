"""``/api/v1/query``, ``/api/v1/query_range`` and ``/api/v1/format_query``: parameters parsed
and checked in Prometheus's order and with its texts, the query itself run by the query
service (``omtsdb.query``), the answer written by ``envelope.query_success``."""

from __future__ import annotations

import time

from aiohttp import web

from omtsdb.api.envelope import query_success, success
from omtsdb.api.http import Params, json_response, one, params
from omtsdb.api.params import parse_duration_param, parse_time
from omtsdb.api.services import SERVICES
from omtsdb.errors import BadDataError, ParseError
from omtsdb.promql.parser import format_expr, parse
from omtsdb.query.service import check_range


def timeout_s(p: Params) -> float | None:
    """The ``timeout`` parameter in seconds (None when absent); the service takes the smaller
    of it and ``--query.timeout``."""
    t = one(p, "timeout")
    if t is None or t == "":
        return None
    return parse_duration_param("timeout", t) / 1000  # <= 0: timed out at once


def _lookback(p: Params) -> int | None:
    lb = one(p, "lookback_delta")
    return parse_duration_param("lookback_delta", lb) if lb else None


def _eval_time(p: Params) -> int:
    t = one(p, "time")
    if not t:
        return int(time.time() * 1000)
    try:
        return parse_time("time", t)
    except BadDataError as e:
        msg = str(e).replace('invalid parameter "time": ', "")
        raise BadDataError(
            f"invalid parameter \"time\": invalid time value for 'time': {msg}"
        ) from None


async def query(req: web.Request) -> web.Response:
    svc = req.app[SERVICES].query
    p = await params(req)
    t_ms = _eval_time(p)
    to = timeout_s(p)
    res = await svc.instant(
        one(p, "query") or "",
        t_ms,
        timeout_s=to,
        lookback_ms=_lookback(p),
        stats=one(p, "stats") is not None,
    )
    return json_response(query_success(res))


async def query_range(req: web.Request) -> web.Response:
    svc = req.app[SERVICES].query
    p = await params(req)
    start = parse_time("start", one(p, "start") or "")
    end = parse_time("end", one(p, "end") or "")
    if end < start:
        raise BadDataError('invalid parameter "end": end timestamp must not be before start time')
    step = parse_duration_param("step", one(p, "step") or "")
    check_range(start, end, step, svc.limits.max_points_per_series)
    to = timeout_s(p)
    res = await svc.range(
        one(p, "query") or "",
        start,
        end,
        step,
        timeout_s=to,
        lookback_ms=_lookback(p),
        stats=one(p, "stats") is not None,
    )
    return json_response(query_success(res, matrix_for_range=True))


async def format_query(req: web.Request) -> web.Response:
    p = await params(req)
    q = one(p, "query") or ""
    svc = req.app[SERVICES].query
    svc.check_length(q)
    try:
        expr = await svc.run(lambda: parse(q))
    except ParseError as e:
        raise BadDataError(f'invalid parameter "query": {e}') from None
    return json_response(success(format_expr(expr)))
