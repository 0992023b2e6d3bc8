"""The status endpoints with the shapes Prometheus 3.5 answers: ``/api/v1/status/tsdb``,
``walreplay``, ``config``, ``buildinfo``, ``flags``, ``runtimeinfo``; and ``/-/healthy``,
``/-/ready``. TSDB figures come through the ``storage.status.TSDBStatus`` protocol.

TSDB cardinality statistics are computed from the head's postings (live series only), as
Prometheus does: top ``limit`` (default 10) entries of series count by metric name, distinct
value count by label name, bytes of label name and value by label name (length-prefixed, as
Prometheus's labels are encoded, times the series count) and series count by ``name=value``.
Ties are broken by name so that answers are reproducible.
"""

from __future__ import annotations

import heapq
import os
import platform
import socket
import threading
import time
from collections.abc import Iterable
from typing import Any

from aiohttp import web

from omtsdb import __version__
from omtsdb.api.envelope import success
from omtsdb.api.http import json_response
from omtsdb.api.services import SERVICES
from omtsdb.errors import BadDataError, UnavailableError
from omtsdb.model.labels import METRIC_NAME
from omtsdb.storage.status import TSDBStatus


def _uvarint_len(n: int) -> int:
    size = 1
    while n >= 0x80:
        n >>= 7
        size += 1
    return size


def label_size(name: str, value: str) -> int:
    """Bytes of one label pair in Prometheus's encoding (uvarint length + bytes, twice)."""
    nb, vb = len(name.encode()), len(value.encode())
    return _uvarint_len(nb) + nb + _uvarint_len(vb) + vb


def _top(items: Iterable[tuple[str, int]], limit: int) -> list[dict[str, Any]]:
    best = heapq.nsmallest(limit, items, key=lambda kv: (-kv[1], kv[0]))
    return [{"name": k, "value": v} for k, v in best]


def tsdb_stats(status: TSDBStatus, limit: int) -> dict[str, Any]:
    head = status.head_status()
    card = status.cardinality()
    by_pair = ((f"{n}={v}", c) for n, vals in card.items() for v, c in vals.items())
    return {
        "headStats": {
            "numSeries": head.num_series,
            "numLabelPairs": sum(len(vals) for vals in card.values()),
            "chunkCount": head.chunk_count,
            "minTime": head.min_time,
            "maxTime": head.max_time,
        },
        "seriesCountByMetricName": _top(card.get(METRIC_NAME, {}).items(), limit),
        "labelValueCountByLabelName": _top(((n, len(v)) for n, v in card.items()), limit),
        "memoryInBytesByLabelName": _top(
            ((n, sum(label_size(n, v) * c for v, c in vals.items())) for n, vals in card.items()),
            limit,
        ),
        "seriesCountByLabelValuePair": _top(by_pair, limit),
    }


def _limit(req: web.Request) -> int:
    s = req.query.get("limit", "")
    if s == "":
        return 10
    try:
        n = int(s)
    except ValueError:
        n = 0
    if n < 1:
        raise BadDataError("limit must be a positive number")
    return n


def _tsdb(req: web.Request) -> TSDBStatus:
    status = req.app[SERVICES].tsdb
    if status is None:
        raise UnavailableError("TSDB status is only available for the embedded storage")
    return status


async def tsdb_status(req: web.Request) -> web.Response:
    limit = _limit(req)
    return json_response(success(tsdb_stats(_tsdb(req), limit)))


async def walreplay_status(req: web.Request) -> web.Response:
    wal = _tsdb(req).wal_status()
    if wal is None:
        data = {"min": 0, "max": 0, "current": 0}
    else:
        data = {
            "min": wal.replay_first_segment,
            "max": wal.replay_last_segment,
            "current": wal.replay_last_segment,
        }
    return json_response(success(data))


async def config_status(req: web.Request) -> web.Response:
    return json_response(success({"yaml": req.app[SERVICES].runtime.config_yaml}))


async def healthy(req: web.Request) -> web.Response:
    return web.Response(text="Prometheus Server is Healthy.\n")


async def ready(req: web.Request) -> web.Response:
    return web.Response(text="Prometheus Server is Ready.\n")


async def buildinfo(req: web.Request) -> web.Response:
    return json_response(
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
    return json_response(success(req.app[SERVICES].options.flags))


async def runtimeinfo(req: web.Request) -> web.Response:
    svc = req.app[SERVICES]
    lc, opts = svc.lifecycle, svc.options
    return json_response(
        success(
            {
                "startTime": _rfc3339(opts.started),
                "CWD": os.getcwd(),
                "hostname": socket.gethostname(),
                "serverTime": _rfc3339(time.time()),
                "reloadConfigSuccess": lc.reload_success,
                "lastConfigTime": _rfc3339(lc.last_config_time, frac=False),
                "corruptionCount": 0,
                "goroutineCount": threading.active_count(),
                "GOMAXPROCS": os.cpu_count() or 1,
                "GOGC": "",
                "GODEBUG": "",
                "storageRetention": opts.flags.get("storage.tsdb.retention.time", "15d"),
            }
        )
    )


def _rfc3339(t: float, frac: bool = True) -> str:
    base = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t))
    return f"{base}.{int(t * 1e9) % 1_000_000_000:09d}Z" if frac else base + "Z"
