"""aiohttp application: the Prometheus v1 query API, metadata queries, health, status."""

from __future__ import annotations

import asyncio
import os
import platform
import socket
import threading
import time
from collections.abc import Awaitable, Callable, Hashable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote_to_bytes

from aiohttp import web

from omtsdb import __version__
from omtsdb.api.envelope import error_body, query_success, success
from omtsdb.api.exemplars import query_exemplars
from omtsdb.api.federate import FederateState, register_federate
from omtsdb.api.inline import QueryCosts
from omtsdb.api.instrument import (
    method_not_allowed_or_404,
    metrics_mw,
    register_metrics,
    run_query,
)
from omtsdb.api.lifecycle import LIFECYCLE
from omtsdb.api.params import MAX_TIME_MS, MIN_TIME_MS, parse_duration_param, parse_time
from omtsdb.api.runtime import DEFAULT_CONFIG_YAML, RUNTIME, Runtime
from omtsdb.api.status import register_status_routes
from omtsdb.errors import BadDataError, OmtsdbError
from omtsdb.model.labels import Labels, quote_bytes
from omtsdb.model.selector import parse_selector
from omtsdb.obs.metrics import ENGINE_QUERIES_MAX
from omtsdb.promql.engine import Engine
from omtsdb.promql.parser import format_expr, parse
from omtsdb.remote import RemoteOptions, register_remote_routes
from omtsdb.storage.interface import Queryable
from omtsdb.storage.metadata import MetadataStore

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class APIOptions:
    max_concurrency: int = 20
    flags: dict[str, str] = field(default_factory=dict)
    storage_path: str = ""
    remote_write_receiver: bool = True
    started: float = field(default_factory=time.time)
    metadata_store: MetadataStore | None = None
    # route registrars called before the catch-all routes (scrape API, lifecycle, ...)
    extra_routes: list[Callable[[web.Application], None]] = field(default_factory=list)
    # initial values; a config reload changes them through ``app[RUNTIME].update(...)``
    external_labels: Labels = field(default_factory=Labels)
    config_yaml: str = DEFAULT_CONFIG_YAML


@dataclass
class State:
    queryable: Queryable
    engine: Engine
    opts: APIOptions
    pool: ThreadPoolExecutor
    limiter: asyncio.Semaphore
    costs: QueryCosts = field(default_factory=QueryCosts)


STATE: web.AppKey[State] = web.AppKey("omtsdb_state", State)


def _json(body: bytes, status: int = 200) -> web.Response:
    return web.Response(body=body, status=status, content_type="application/json")


async def _params(req: web.Request) -> dict[str, Any]:
    params: dict[str, Any] = {}
    for k, v in req.query.items():
        params.setdefault(k, []).append(v)
    if req.method == "POST" and req.content_type == "application/x-www-form-urlencoded":
        form = await req.post()
        for k, fv in form.items():
            params.setdefault(k, []).append(fv if isinstance(fv, str) else str(fv))
    return params


def _one(params: dict[str, Any], name: str) -> str | None:
    vals = params.get(name)
    return vals[0] if vals else None


@web.middleware
async def errors_mw(req: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(req)
    except web.HTTPException:
        raise
    except Exception as e:  # the one place an exception becomes a response
        status, body = error_body(e)
        return _json(body, status)


async def _run(st: State, fn: Callable[[], Any]) -> Any:
    async with st.limiter:
        return await asyncio.get_running_loop().run_in_executor(st.pool, fn)


async def _inline(fn: Callable[[], Any]) -> Any:
    return fn()


async def _run_query(st: State, key: Hashable, fn: Callable[[], Any]) -> Any:
    """Evaluate a query in the pool, or on the loop when its last run was cheap (see
    ``api.inline``)."""
    costs = st.costs

    def timed() -> Any:
        t0 = time.perf_counter()
        try:
            return fn()
        finally:
            costs.record(key, time.perf_counter() - t0)

    if costs.cheap(key):
        return await run_query(st.limiter, _inline, timed)
    loop = asyncio.get_running_loop()
    return await run_query(st.limiter, lambda f: loop.run_in_executor(st.pool, f), timed)


def _timeout_ms(params: dict[str, Any]) -> None:
    t = _one(params, "timeout")
    if t is not None:
        parse_duration_param("timeout", t)


def _lookback(params: dict[str, Any]) -> int | None:
    lb = _one(params, "lookback_delta")
    return parse_duration_param("lookback_delta", lb) if lb else None


async def query(req: web.Request) -> web.Response:
    st = req.app[STATE]
    p = await _params(req)
    q = _one(p, "query") or ""
    t = _one(p, "time")
    try:
        t_ms = parse_time("time", t) if t else int(time.time() * 1000)
    except BadDataError as e:
        msg = str(e).replace('invalid parameter "time": ', "")
        raise BadDataError(
            f"invalid parameter \"time\": invalid time value for 'time': {msg}"
        ) from None
    _timeout_ms(p)
    lb = _lookback(p)
    stats = _one(p, "stats") is not None
    try:
        body = await _run_query(
            st,
            ("instant", q, lb, stats),
            lambda: query_success(
                st.engine.instant_query(st.queryable, q, t_ms, stats=stats, lookback_delta_ms=lb)
            ),
        )
    except OmtsdbError as e:
        if type(e).__name__ == "ParseError":
            raise BadDataError(f'invalid parameter "query": {e}') from None
        raise
    return _json(body)


async def query_range(req: web.Request) -> web.Response:
    st = req.app[STATE]
    p = await _params(req)
    start = parse_time("start", _one(p, "start") or "")
    end = parse_time("end", _one(p, "end") or "")
    if end < start:
        raise BadDataError('invalid parameter "end": end timestamp must not be before start time')
    step = parse_duration_param("step", _one(p, "step") or "")
    if step <= 0:
        raise BadDataError(
            'invalid parameter "step": zero or negative query resolution step '
            "widths are not accepted. Try a positive integer"
        )
    if (end - start) // step > 11_000:
        raise BadDataError(
            "exceeded maximum resolution of 11,000 points per timeseries. "
            "Try decreasing the query resolution (?step=XX)"
        )
    _timeout_ms(p)
    lb = _lookback(p)
    q = _one(p, "query") or ""
    stats = _one(p, "stats") is not None
    try:
        body = await _run_query(
            st,
            ("range", q, end - start, step, lb, stats),
            lambda: query_success(
                st.engine.range_query(
                    st.queryable, q, start, end, step, stats=stats, lookback_delta_ms=lb
                ),
                matrix_for_range=True,
            ),
        )
    except OmtsdbError as e:
        if type(e).__name__ == "ParseError" or str(e).startswith("invalid expression type"):
            raise BadDataError(f'invalid parameter "query": {e}') from None
        raise
    return _json(body)


async def format_query(req: web.Request) -> web.Response:
    p = await _params(req)
    q = _one(p, "query") or ""
    try:
        expr = parse(q)
    except OmtsdbError as e:
        raise BadDataError(f'invalid parameter "query": {e}') from None
    return _json(success(format_expr(expr)))


def _range(p: dict[str, Any]) -> tuple[int, int]:
    s, e = _one(p, "start"), _one(p, "end")
    return (
        parse_time("start", s) if s else MIN_TIME_MS,
        parse_time("end", e) if e else MAX_TIME_MS,
    )


def _matchers(p: dict[str, Any], wrap: bool = False) -> list[list[Any]]:
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


def _limit(p: dict[str, Any]) -> int:
    lim = _one(p, "limit")
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


async def labels(req: web.Request) -> web.Response:
    st = req.app[STATE]
    p = await _params(req)
    mint, maxt = _range(p)
    sets = _matchers(p) or [[]]
    lim = _limit(p)

    def work() -> list[str]:
        q = st.queryable.querier(mint, maxt)
        names: set[str] = set()
        for ms in sets:
            names.update(q.label_names(ms, mint, maxt))
        return sorted(names)

    names = await _run(st, work)
    warn = None
    if lim and len(names) > lim:
        names, warn = names[:lim], ["results truncated due to limit"]
    return _json(success(names, warn))


async def label_values(req: web.Request) -> web.Response:
    st = req.app[STATE]
    p = await _params(req)
    name = _label_name_param(req)
    if name.startswith("U__"):
        name = _unescape_name(name[3:])
    mint, maxt = _range(p)
    sets = _matchers(p) or [[]]
    lim = _limit(p)

    def work() -> list[str]:
        q = st.queryable.querier(mint, maxt)
        vals: set[str] = set()
        for ms in sets:
            vals.update(q.label_values(name, ms, mint, maxt))
        return sorted(vals)

    vals = await _run(st, work)
    warn = None
    if lim and len(vals) > lim:
        vals, warn = vals[:lim], ["results truncated due to limit"]
    return _json(success(vals, warn))


def _label_name_param(req: web.Request) -> str:
    """The ``<name>`` path segment; bytes that are not UTF-8 are refused as Prometheus does."""
    raw = req.rel_url.raw_path.split("/")[-2]
    b = unquote_to_bytes(raw)
    try:
        return b.decode("utf-8")
    except UnicodeDecodeError:
        raise BadDataError(f"invalid label name: {quote_bytes(b)}") from None


def _unescape_name(s: str) -> str:
    """Prometheus's ``U__`` label-name escaping: ``_`` -> ``_``? ``__`` -> ``_``, ``_XX_`` hex."""
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
    st = req.app[STATE]
    p = await _params(req)
    sets = _matchers(p, wrap=True)
    if not sets:
        raise BadDataError("no match[] parameter provided")
    mint, maxt = _range(p)
    lim = _limit(p)

    def work() -> list[Labels]:
        q = st.queryable.querier(mint, maxt)
        seen: dict[Labels, None] = {}
        for ms in sets:
            for s in q.select(ms, mint, maxt):
                seen[s.labels] = None
        return sorted(seen, key=lambda lb: lb.sort_key())

    found = await _run(st, work)
    warn = None
    if lim and len(found) > lim:
        found, warn = found[:lim], ["results truncated due to limit"]
    return _json(success([lb.to_dict() for lb in found], warn))


async def healthy(req: web.Request) -> web.Response:
    return web.Response(text="Prometheus Server is Healthy.\n")


async def ready(req: web.Request) -> web.Response:
    return web.Response(text="Prometheus Server is Ready.\n")


async def buildinfo(req: web.Request) -> web.Response:
    return _json(
        success(
            {
                "version": __version__,
                "revision": "",
                "branch": "",
                "buildUser": "",
                "buildDate": "",
                "goVersion": f"python{platform.python_version()}",
            }
        )
    )


async def flags(req: web.Request) -> web.Response:
    return _json(success(req.app[STATE].opts.flags))


async def runtimeinfo(req: web.Request) -> web.Response:
    st = req.app[STATE]
    lc = req.app.get(LIFECYCLE)
    reload_ok = lc.reload_success if lc is not None else True
    last_config = lc.last_config_time if lc is not None else st.opts.started
    return _json(
        success(
            {
                "startTime": _rfc3339(st.opts.started),
                "CWD": os.getcwd(),
                "hostname": socket.gethostname(),
                "serverTime": _rfc3339(time.time()),
                "reloadConfigSuccess": reload_ok,
                "lastConfigTime": _rfc3339(last_config, frac=False),
                "corruptionCount": 0,
                "goroutineCount": threading.active_count(),
                "GOMAXPROCS": os.cpu_count() or 1,
                "GOGC": "",
                "GODEBUG": "",
                "storageRetention": st.opts.flags.get("storage.tsdb.retention.time", "15d"),
            }
        )
    )


def _rfc3339(t: float, frac: bool = True) -> str:
    base = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t))
    return f"{base}.{int(t * 1e9) % 1_000_000_000:09d}Z" if frac else base + "Z"


def create_app(
    queryable: Queryable, engine: Engine, opts: APIOptions | None = None
) -> web.Application:
    opts = opts or APIOptions()
    app = web.Application(middlewares=[metrics_mw, errors_mw], client_max_size=32 * 2**20)  # type: ignore[list-item]
    pool = ThreadPoolExecutor(max_workers=max(1, opts.max_concurrency), thread_name_prefix="query")
    st = State(queryable, engine, opts, pool, asyncio.Semaphore(opts.max_concurrency))
    app[STATE] = st
    app[RUNTIME] = Runtime(opts.external_labels, opts.config_yaml)
    ENGINE_QUERIES_MAX.set(opts.max_concurrency)

    async def _close(app: web.Application) -> None:
        app[STATE].pool.shutdown(wait=False, cancel_futures=True)

    app.on_cleanup.append(_close)
    r = app.router
    for path, h in (
        ("/api/v1/query", query),
        ("/api/v1/query_range", query_range),
        ("/api/v1/format_query", format_query),
        ("/api/v1/labels", labels),
        ("/api/v1/series", series),
        ("/api/v1/query_exemplars", query_exemplars),
    ):
        r.add_get(path, h)
        r.add_post(path, h)
    r.add_get("/api/v1/label/{name}/values", label_values)
    r.add_get("/api/v1/status/buildinfo", buildinfo)
    r.add_get("/api/v1/status/flags", flags)
    r.add_get("/api/v1/status/runtimeinfo", runtimeinfo)
    register_status_routes(app, queryable)
    register_federate(
        app,
        FederateState(
            queryable,
            app[RUNTIME],
            engine.opts.lookback_delta_ms,
            lambda fn: _run(st, fn),
        ),
    )
    register_metrics(app, queryable)
    register_remote_routes(
        app,
        queryable,
        RemoteOptions(enable_remote_write_receiver=opts.remote_write_receiver),
        metadata_store=opts.metadata_store,
    )
    for add_routes in opts.extra_routes:
        add_routes(app)
    r.add_route("*", "/-/healthy", healthy)
    r.add_route("*", "/-/ready", ready)
    r.add_route("*", "/api/v1/{tail:.*}", method_not_allowed_or_404)
    return app
