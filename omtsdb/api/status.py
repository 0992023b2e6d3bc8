"""``/api/v1/status/tsdb``, ``/api/v1/status/walreplay`` and ``/api/v1/status/config`` with the
shapes Prometheus 3.5 answers.

TSDB cardinality statistics are computed from the head's postings (live series only), as
Prometheus does: top ``limit`` (default 10) entries of series count by metric name, distinct
value count by label name, bytes of label name and value by label name (length-prefixed, as
Prometheus's labels are encoded, times the series count) and series count by ``name=value``.
Ties are broken by name so that answers are reproducible.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable
from typing import Any

from aiohttp import web

from omtsdb.api.envelope import success
from omtsdb.api.runtime import RUNTIME
from omtsdb.errors import BadDataError, UnavailableError
from omtsdb.model.labels import METRIC_NAME
from omtsdb.storage.interface import Queryable
from omtsdb.tsdb.db import DB

STATUS_DB: web.AppKey[object] = web.AppKey("omtsdb_status_db", object)


def _json(body: bytes) -> web.Response:
    return web.Response(body=body, content_type="application/json")


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


def tsdb_stats(db: DB, limit: int) -> dict[str, Any]:
    head = db.head
    card = head.postings.cardinality()
    by_pair = ((f"{n}={v}", c) for n, vals in card.items() for v, c in vals.items())
    return {
        "headStats": {
            "numSeries": head.num_series,
            "numLabelPairs": sum(len(vals) for vals in card.values()),
            "chunkCount": head.chunk_count(),
            "minTime": int(head.mint),
            "maxTime": int(head.maxt),
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


def _db(req: web.Request) -> DB:
    db = req.app[STATUS_DB]
    if not isinstance(db, DB):
        raise UnavailableError("TSDB status is only available for the embedded storage")
    return db


async def tsdb_status(req: web.Request) -> web.Response:
    limit = _limit(req)
    db = _db(req)
    return _json(success(tsdb_stats(db, limit)))


async def walreplay_status(req: web.Request) -> web.Response:
    db = _db(req)
    if db.wal is None:
        data = {"min": 0, "max": 0, "current": 0}
    else:
        st = db.wal.stats
        data = {
            "min": st.replay_first_segment,
            "max": st.replay_last_segment,
            "current": st.replay_last_segment,
        }
    return _json(success(data))


async def config_status(req: web.Request) -> web.Response:
    return _json(success({"yaml": req.app[RUNTIME].config_yaml}))


def register_status_routes(app: web.Application, queryable: Queryable) -> None:
    """Add the three status endpoints (``app[RUNTIME]`` must be set)."""
    app[STATUS_DB] = queryable
    r = app.router
    r.add_get("/api/v1/status/tsdb", tsdb_status)
    r.add_get("/api/v1/status/walreplay", walreplay_status)
    r.add_get("/api/v1/status/config", config_status)
