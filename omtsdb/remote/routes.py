"""aiohttp handlers of the ingestion and remote-storage endpoints (registered by the route table,
``api.routes``). Remote write and remote read answer errors in plain text as Prometheus's
handlers do (``api.http.text_error``); the ``/api/v1/*`` import, OTLP and metadata endpoints use
the JSON envelope. What they write to and read from is handed in by the composition root
(:class:`RemoteState`), never looked up or downcast here."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

import numpy as np
from aiohttp import web

from omtsdb.api.envelope import success
from omtsdb.api.http import text_error, text_response
from omtsdb.errors import BadDataError, OmtsdbError
from omtsdb.model.exposition import NO_TS, parse
from omtsdb.obs.metrics import REMOTE_READ_QUERIES, REMOTE_WRITE_REQUESTS, REMOTE_WRITE_SAMPLES
from omtsdb.remote import otlp
from omtsdb.remote.read import (
    SAMPLES,
    STREAM_CONTENT_TYPE,
    chunked_frames,
    decode_read_request,
    samples_response,
    select,
)
from omtsdb.remote.wire import (
    RW2,
    UnsupportedMediaError,
    media_type,
    read_body,
    snappy_decode,
    snappy_encode,
    write_message_type,
)
from omtsdb.remote.write import RemoteWriter, WriteOutcome
from omtsdb.storage.interface import Queryable
from omtsdb.storage.metadata import MetadataStore

log = logging.getLogger(__name__)
T = TypeVar("T")
DISABLED_MSG = "remote write receiver needs to be enabled with --web.enable-remote-write-receiver"


@dataclass(frozen=True, slots=True)
class RemoteOptions:
    enable_remote_write_receiver: bool = True
    enable_otlp_receiver: bool = True
    max_body_bytes: int = 32 * 2**20
    max_decoded_bytes: int = 64 * 2**20
    read_sample_limit: int = 50_000_000
    read_max_bytes_in_frame: int = 2**20
    ingest_threads: int = 2


class _Report(Protocol):
    @property
    def rejected(self) -> int: ...

    appended: int
    first_error: Any


class _ColumnAppender(Protocol):
    def append_columns(
        self,
        series: list[Any],
        idx: np.ndarray[Any, Any],
        ts: np.ndarray[Any, Any],
        vs: Any,
        st: np.ndarray[Any, Any] | None = None,
    ) -> _Report: ...

    def commit(self) -> None: ...

    def rollback(self) -> None: ...


class ColumnAppendable(Protocol):
    """Where imported and OTLP samples go: a batch of columns per appender (the TSDB)."""

    def appender(self) -> _ColumnAppender: ...


@dataclass
class RemoteState:
    queryable: Queryable  # remote read
    opts: RemoteOptions
    metadata: MetadataStore
    writer: RemoteWriter | None  # remote write receiver; None: writes are refused
    appendable: ColumnAppendable | None  # text import and OTLP; None: refused
    pool: ThreadPoolExecutor

    async def run(self, fn: Callable[[], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self.pool, fn)

    def close(self) -> None:
        self.pool.shutdown(wait=True)


def remote_state(
    queryable: Queryable,
    metadata: MetadataStore,
    *,
    writer: RemoteWriter | None = None,
    appendable: ColumnAppendable | None = None,
    opts: RemoteOptions | None = None,
) -> RemoteState:
    opts = opts or RemoteOptions()
    pool = ThreadPoolExecutor(max_workers=max(1, opts.ingest_threads), thread_name_prefix="ingest")
    return RemoteState(queryable, opts, metadata, writer, appendable, pool)


REMOTE: web.AppKey[RemoteState] = web.AppKey("omtsdb_remote", RemoteState)


def _v2_headers(out: WriteOutcome) -> dict[str, str]:
    return {
        "X-Prometheus-Remote-Write-Samples-Written": str(out.samples),
        "X-Prometheus-Remote-Write-Histograms-Written": str(out.histograms),
        "X-Prometheus-Remote-Write-Exemplars-Written": str(out.exemplars),
    }


async def remote_write(req: web.Request) -> web.StreamResponse:
    resp = await _remote_write(req)
    REMOTE_WRITE_REQUESTS.labels(str(resp.status)).inc()
    return resp


async def _remote_write(req: web.Request) -> web.StreamResponse:
    st = req.app[REMOTE]
    if st.writer is None or not st.opts.enable_remote_write_receiver:
        return text_response(404, DISABLED_MSG + "\n")
    writer = st.writer
    try:
        msg = write_message_type(
            req.headers.get("Content-Type", ""), req.headers.get("Content-Encoding", "")
        )
    except UnsupportedMediaError as e:
        return text_error(e)
    v2 = msg == RW2
    try:
        body = await read_body(req, st.opts.max_body_bytes)
        data = snappy_decode(body, st.opts.max_decoded_bytes)
        fn = writer.write_v2 if v2 else writer.write_v1
        out = await st.run(lambda: fn(data))
    except OmtsdbError as e:
        return text_error(e, _v2_headers(WriteOutcome()) if v2 else None)
    except Exception as e:  # the sender retries a 5xx
        log.exception("remote write failed")
        return text_error(e)
    headers = _v2_headers(out) if v2 else None
    REMOTE_WRITE_SAMPLES.labels("float").inc(out.samples)
    REMOTE_WRITE_SAMPLES.labels("histogram").inc(out.histograms)
    REMOTE_WRITE_SAMPLES.labels("exemplar").inc(out.exemplars)
    if out.errors:
        return text_error(BadDataError("; ".join(out.errors)), headers)
    return web.Response(status=204, headers=headers)


async def remote_read(req: web.Request) -> web.StreamResponse:
    REMOTE_READ_QUERIES.inc()
    try:
        return await _remote_read(req)
    finally:
        REMOTE_READ_QUERIES.dec()


async def _remote_read(req: web.Request) -> web.StreamResponse:
    st = req.app[REMOTE]
    try:
        body = await read_body(req, st.opts.max_body_bytes)
        queries, rtype = decode_read_request(snappy_decode(body, st.opts.max_decoded_bytes))
        results = await st.run(lambda: [select(st.queryable, q) for q in queries])
        if rtype == SAMPLES:
            payload = await st.run(
                lambda: snappy_encode(samples_response(results, st.opts.read_sample_limit))
            )
            return web.Response(
                body=payload,
                headers={"Content-Type": "application/x-protobuf", "Content-Encoding": "snappy"},
            )
        frames = await st.run(
            lambda: [
                f
                for i, series in enumerate(results)
                for f in chunked_frames(i, series, st.opts.read_max_bytes_in_frame)
            ]
        )
    except Exception as e:
        if not isinstance(e, OmtsdbError):
            log.exception("remote read failed")
        return text_error(e)
    resp = web.StreamResponse(headers={"Content-Type": STREAM_CONTENT_TYPE})
    await resp.prepare(req)
    for f in frames:
        await resp.write(f)
    await resp.write_eof()
    return resp


def _decoded(body: bytes, encoding: str) -> bytes:
    """aiohttp has already undone gzip/deflate/br Content-Encoding (and counted the decoded
    bytes against the body limit); any other encoding is refused."""
    if encoding.strip().lower() not in ("", "identity", "gzip", "deflate", "br"):
        raise UnsupportedMediaError(f"unsupported Content-Encoding {encoding!r}")
    return body


def _append_samples(
    db: ColumnAppendable,
    series: list[Any],
    idx: np.ndarray[Any, Any],
    ts: np.ndarray[Any, Any],
    vs: Any,
    st: np.ndarray[Any, Any] | None = None,
) -> int:
    """One batch, all or nothing: any refused sample rolls the whole batch back (400)."""
    app = db.appender()
    report = app.append_columns(series, idx, ts, vs, st)
    if report.rejected:
        app.rollback()
        raise BadDataError(
            f"{report.rejected} samples refused, nothing imported: {report.first_error}"
        )
    app.commit()
    return report.appended


async def import_prometheus(req: web.Request) -> web.Response:
    st = req.app[REMOTE]
    if st.appendable is None:
        raise BadDataError("this storage does not accept writes")
    db = st.appendable
    body = _decoded(
        await read_body(req, st.opts.max_body_bytes), req.headers.get("Content-Encoding", "")
    )
    now_ms = int(time.time() * 1000)

    def work() -> None:
        exp = parse(body, "text")
        ts = np.where(exp.ts == NO_TS, now_ms, exp.ts)
        if len(exp):
            _append_samples(db, exp.series, exp.series_idx, ts, exp.vs)
        for name, md in exp.metadata.items():
            st.metadata.add(name, md.type or "unknown", md.help, md.unit)

    await st.run(work)
    return web.Response(status=204)


async def otlp_metrics(req: web.Request) -> web.Response:
    st = req.app[REMOTE]
    if st.appendable is None or not st.opts.enable_otlp_receiver:
        return text_response(404, "otlp receiver needs to be enabled\n")
    db = st.appendable
    mt, _ = media_type(req.headers.get("Content-Type", ""))
    if mt not in ("application/x-protobuf", "application/json"):
        return text_error(
            UnsupportedMediaError(
                f"unsupported content type {mt!r}: only application/x-protobuf and application/json"
            )
        )
    as_json = mt == "application/json"
    body = _decoded(
        await read_body(req, st.opts.max_body_bytes), req.headers.get("Content-Encoding", "")
    )

    def work() -> otlp.Translated:
        tr = otlp.translate(otlp.decode_request(body, json_encoded=as_json))
        if tr.samples:
            series = [s[0] for s in tr.samples]
            n = len(series)
            ts = np.fromiter((s[1] for s in tr.samples), np.int64, n)
            vs = np.fromiter((s[2] for s in tr.samples), np.float64, n)
            sts = np.fromiter((s[3] for s in tr.samples), np.int64, n)
            _append_samples(db, series, np.arange(n), ts, vs, sts)
        for name, typ, help_, unit in tr.metadata:
            st.metadata.add(name, typ, help_, unit)
        return tr

    tr = await st.run(work)
    if tr.skipped:
        log.warning("OTLP: %s", "; ".join(tr.skipped[:10]))
    if as_json:
        return web.Response(status=200, body=b"{}", content_type="application/json")
    return web.Response(status=200, body=b"", content_type="application/x-protobuf")


def _int_param(req: web.Request, name: str) -> int:
    s = req.query.get(name, "")
    if s == "":
        return -1
    try:
        return int(s)
    except ValueError:
        raise BadDataError(f"{name} must be a number") from None


async def metadata(req: web.Request) -> web.Response:
    st = req.app[REMOTE]
    data = st.metadata.query(
        _int_param(req, "limit"), _int_param(req, "limit_per_metric"), req.query.get("metric", "")
    )
    return web.Response(body=success(data), content_type="application/json")
