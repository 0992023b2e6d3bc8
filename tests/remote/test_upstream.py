"""Remote write to an upstream: omtsdb sends what it ingests to another omtsdb receiver."""

from __future__ import annotations

import asyncio
import struct
import threading
import time
from dataclasses import replace

import numpy as np
from aiohttp import web
from aiohttp.test_utils import TestServer

from omtsdb.compose import build_app
from omtsdb.config.model import QueueConfig, RemoteWriteConfig
from omtsdb.model.labels import Labels
from omtsdb.model.matchers import Matcher
from omtsdb.model.samples import STALE_NAN
from omtsdb.promql.engine import Engine
from omtsdb.remote.upstream import RemoteWriteManager
from omtsdb.tsdb.db import DB, DBOptions


def read(db: DB, name: str) -> dict[Labels, list[tuple[int, int]]]:
    q = db.querier(-(2**62), 2**62)
    out = {}
    for s in q.select([Matcher.eq("__name__", name)], -(2**62), 2**62):
        bits = s.vs.view(np.uint64).tolist()
        out[s.labels] = list(zip(s.ts.tolist(), bits, strict=True))
    return out


def bits(v: float) -> int:
    return int(struct.unpack("<Q", struct.pack("<d", v))[0])


class Upstream:
    """An omtsdb receiver on a loopback port in a thread, optionally failing first."""

    def __init__(self, fail_first: int = 0, status: int = 503) -> None:
        self.db = DB.open(None, DBOptions())
        self.fail_left = fail_first
        self.status = status
        self.seen = 0
        self.ready = threading.Event()
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()
        assert self.ready.wait(10)

    def _serve(self) -> None:
        asyncio.set_event_loop(self.loop)

        @web.middleware
        async def flaky(req: web.Request, handler):  # type: ignore[no-untyped-def]
            self.seen += 1
            if self.fail_left > 0:
                self.fail_left -= 1
                return web.Response(status=self.status, text="try later")
            return await handler(req)

        app = build_app(self.db, Engine())
        app.middlewares.insert(0, flaky)
        self.server = TestServer(app, host="127.0.0.1")
        self.loop.run_until_complete(self.server.start_server())
        self.url = str(self.server.make_url("/api/v1/write"))
        self.ready.set()
        self.loop.run_forever()

    def close(self) -> None:
        fut = asyncio.run_coroutine_threadsafe(self.server.close(), self.loop)
        fut.result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


def wait_for(cond, timeout: float = 10.0) -> bool:  # type: ignore[no-untyped-def]
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(0.02)
    return False


def cfg(url: str, **kw: object) -> RemoteWriteConfig:
    qc = QueueConfig(batch_send_deadline_ms=50, min_backoff_ms=10, max_backoff_ms=40)
    return replace(RemoteWriteConfig(url=url, queue_config=qc), **kw)  # type: ignore[arg-type]


def test_samples_reach_the_upstream_bit_exact_with_external_labels() -> None:
    up = Upstream(fail_first=2)
    src = DB.open(None, DBOptions())
    mgr = RemoteWriteManager(src.head.labels_of)
    src.commit_listeners.append(mgr.on_commit)
    try:
        mgr.apply((cfg(up.url),), Labels({"replica": "r1", "job": "ext"}))
        app = src.appender()
        series = [Labels({"__name__": "m", "job": "a", "i": str(i)}) for i in range(50)]
        idx = np.repeat(np.arange(50), 3)
        ts = np.tile(np.array([1000, 2000, 3000]), 50)
        vs = np.arange(150, dtype=np.float64)
        vs[2] = STALE_NAN
        app.append_columns(series, idx, ts, vs)
        app.commit()
        assert wait_for(lambda: sum(len(v) for v in read(up.db, "m").values()) == 150)
        got = read(up.db, "m")
        first = Labels({"__name__": "m", "job": "a", "i": "0", "replica": "r1"})
        # the series' own job wins over the external label; the staleness marker is bit-exact
        assert got[first] == [(1000, bits(0.0)), (2000, bits(1.0)), (3000, 0x7FF0000000000002)]
        (q,) = mgr.queues.values()
        assert q.stats.samples_sent == 150 and q.stats.samples_retried > 0 and up.seen >= 3
    finally:
        mgr.close()
        up.close()


def test_refused_batches_are_dropped_and_relabel_applies() -> None:
    from omtsdb.config.model import RelabelConfig

    up = Upstream(fail_first=1, status=400)
    src = DB.open(None, DBOptions())
    mgr = RemoteWriteManager(src.head.labels_of)
    src.commit_listeners.append(mgr.on_commit)
    drop = RelabelConfig(source_labels=("__name__",), regex="secret.*", action="drop")
    try:
        mgr.apply((cfg(up.url, write_relabel_configs=(drop,)),), Labels())
        for t, names in ((1000, ["a", "secret_x"]), (2000, ["a", "secret_x"])):
            app = src.appender()
            app.append_columns(
                [Labels({"__name__": n}) for n in names],
                np.arange(len(names)),
                np.full(len(names), t),
                np.ones(len(names)),
            )
            app.commit()
            time.sleep(0.2)  # one batch per commit
        (q,) = mgr.queues.values()
        assert wait_for(lambda: q.stats.samples_sent == 1)
        assert q.stats.samples_failed == 1  # the first batch was refused with a 400
        assert read(up.db, "secret_x") == {}
        assert list(read(up.db, "a").values()) == [[(2000, bits(1.0))]]
    finally:
        mgr.close()
        up.close()


def test_metadata_and_remote_write_2() -> None:
    from omtsdb.remote.routes import REMOTE

    up = Upstream()
    src = DB.open(None, DBOptions())
    md = {"m_total": ("counter", "Things done.", ""), "g": ("gauge", "A level.", "bytes")}
    mgr = RemoteWriteManager(src.head.labels_of, lambda: md)
    src.commit_listeners.append(mgr.on_commit)
    try:
        c1 = cfg(up.url, metadata_send_interval_ms=100, name="v1")
        c2 = cfg(up.url, protobuf_message="io.prometheus.write.v2.Request", name="v2")
        mgr.apply((c1,), Labels())
        store = up.server.app[REMOTE].metadata
        # remote write 1.0: metadata in requests of its own
        assert wait_for(lambda: len(store) == 2)
        assert store.query()["g"] == [{"type": "gauge", "help": "A level.", "unit": "bytes"}]
        # remote write 2.0: the samples and the series' metadata in one request
        mgr.apply((c2,), Labels({"via": "v2"}))
        app = src.appender()
        app.append_columns(
            [Labels({"__name__": "m_total", "job": "a"})],
            np.zeros(2, np.int64),
            np.array([1000, 2000]),
            np.array([1.0, 2.0]),
        )
        app.commit()
        want = {
            Labels({"__name__": "m_total", "job": "a", "via": "v2"}): [
                (1000, bits(1.0)),
                (2000, bits(2.0)),
            ]
        }
        assert wait_for(lambda: read(up.db, "m_total") == want)
        (q,) = mgr.queues.values()
        assert q.v2 and q.stats.samples_sent == 2
    finally:
        mgr.close()
        up.close()
