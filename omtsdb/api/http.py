"""Request and response helpers shared by every handler, and the one error map's two writers:
the JSON envelope (the ``/api/v1`` endpoints, by ``errors_mw``) and plain text (remote write
and read, federation, lifecycle, as Prometheus's handlers answer those).

Handlers raise ``omtsdb.errors`` types; ``envelope.error_status`` maps each to its HTTP status
and ``errorType`` by type, never by class name or message text.
"""

from __future__ import annotations

import asyncio
import urllib.parse
from collections.abc import Awaitable, Callable, Mapping

from aiohttp import web

from omtsdb.api.envelope import error_body, error_status
from omtsdb.model.labels import as_valid_utf8

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Params = dict[str, list[str]]


async def params(req: web.Request) -> Params:
    """Form and query-string parameters, each name with all its values, the form's first (as
    Go's ``r.Form``: body parameters take precedence). A large form body is decoded on a
    worker thread: a 5 MB form takes ~70 ms to split, too long to hold the event loop."""
    out: Params = {}
    if req.method == "POST" and req.content_type == "application/x-www-form-urlencoded":
        body = await req.read()
        if len(body) > _FORM_INLINE_MAX:
            pairs = await asyncio.to_thread(_parse_form, body, req.charset)
        else:
            pairs = _parse_form(body, req.charset)
        for k, v in pairs:
            out.setdefault(k, []).append(v)
    for k, v in req.query.items():
        out.setdefault(k, []).append(v)
    return out


_FORM_INLINE_MAX = 64 * 1024


def _parse_form(body: bytes, charset: str | None) -> list[tuple[str, str]]:
    text = body.decode(charset or "utf-8", "surrogateescape")
    return urllib.parse.parse_qsl(text, keep_blank_values=True, encoding=charset or "utf-8")


def one(p: Params, name: str) -> str | None:
    vals = p.get(name)
    return vals[0] if vals else None


def json_response(body: bytes, status: int = 200) -> web.Response:
    return web.Response(body=body, status=status, content_type="application/json")


def text_response(status: int, text: str, headers: Mapping[str, str] | None = None) -> web.Response:
    """A plain-text answer, ``text`` as given."""
    return web.Response(
        status=status,
        text=text,
        content_type="text/plain",
        charset="utf-8",
        headers=headers,
    )


def text_error(err: BaseException, headers: Mapping[str, str] | None = None) -> web.Response:
    """A plain-text error answer for ``err`` with the status of the one error map, one line
    as Go's ``http.Error`` writes it."""
    status, _, msg = error_status(err)
    return text_response(status, as_valid_utf8(msg).rstrip("\n") + "\n", headers)


@web.middleware
async def errors_mw(req: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(req)
    except web.HTTPException:
        raise
    except Exception as e:  # the one place an exception becomes a JSON error answer
        status, body = error_body(e)
        return json_response(body, status)
