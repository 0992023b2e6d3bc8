"""Scrape loops against a local aiohttp target: labels, staleness, limits, report series."""

from __future__ import annotations

import asyncio
import itertools
import math
import struct
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from typing import Any

import pytest
from aiohttp import web

from omtsdb.config.filesd import TargetGroup
from omtsdb.config.model import Config, RelabelConfig, ScrapeConfig, StaticConfig
from omtsdb.config.units import format_duration_ms as format_duration
from omtsdb.model.labels import Labels
from omtsdb.model.matchers import Matcher
from omtsdb.scrape.http import accept_header
from omtsdb.scrape.loop import ScrapeLoop, merge_target_labels
from omtsdb.scrape.manager import ScrapeManager
from omtsdb.scrape.target import populate
from omtsdb.storage.metadata import MetadataStore
from omtsdb.tsdb.db import DB, DBOptions

STALE = 0x7FF0000000000002


def bits(v: float) -> int:
    return int(struct.unpack("<Q", struct.pack("<d", v))[0])


@dataclass
class Exporter:
    """A scrape target whose answer the test sets."""

    body: str = ""
    content_type: str = "text/plain; version=0.0.4"
    status: int = 200
    delay: float = 0.0
    headers: list[dict[str, str]] = field(default_factory=list)
    port: int = 0

    async def handle(self, req: web.Request) -> web.Response:
        self.headers.append(dict(req.headers))
        if self.delay:
            await asyncio.sleep(self.delay)
        resp = web.Response(status=self.status, body=self.body.encode())
        resp.headers["Content-Type"] = self.content_type
        return resp


@asynccontextmanager
async def exporter() -> AsyncIterator[Exporter]:
    ex = Exporter()
    app = web.Application()
    app.router.add_get("/metrics", ex.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    ex.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield ex
    finally:
        await runner.cleanup()


def job(ex: Exporter, **kw: Any) -> ScrapeConfig:
    base = ScrapeConfig(
        job_name="node",
        scrape_interval_ms=3_600_000,  # loops are driven by scrape_once in these tests
        scrape_timeout_ms=2_000,
        static_configs=(StaticConfig((f"127.0.0.1:{ex.port}",), Labels({"team": "a"})),),
    )
    return replace(base, **kw)


def read(db: DB, name: str) -> dict[Labels, list[tuple[int, float]]]:
    q = db.querier(-(2**62), 2**62)
    return {
        s.labels: list(zip(s.ts.tolist(), s.vs.tolist(), strict=True))
        for s in q.select([Matcher.eq("__name__", name)], -(2**62), 2**62)
    }


def one(db: DB, name: str) -> list[tuple[int, float]]:
    got = read(db, name)
    assert len(got) == 1, got
    return next(iter(got.values()))


def run(
    cfg: Callable[[Exporter], ScrapeConfig], body: Callable[[Exporter, DB, ScrapeLoop], Any]
) -> None:
    async def main() -> None:
        db = DB.open(None, DBOptions())
        pool = ThreadPoolExecutor(2)
        async with exporter() as ex:
            sc = cfg(ex)
            mgr = ScrapeManager(db, pool, MetadataStore())
            await mgr.apply(Config(scrape_configs=(sc,)))
            loop = next(iter(mgr.pools["node"].loops.values()))
            # the loop task waits an hour for its first tick: drive scrapes by hand
            res = body(ex, db, loop)
            if asyncio.iscoroutine(res):
                await res
            await mgr.stop()
        pool.shutdown()

    asyncio.run(main())


def test_scrape_stores_samples_with_target_labels_and_report_series() -> None:
    async def body(ex: Exporter, db: DB, loop: ScrapeLoop) -> None:
        ex.body = '# HELP m A gauge.\n# TYPE m gauge\nm{a="1"} 1.5\nm{a="2"} 2\nc_total 7\n'
        res = await loop.scrape_once(1_000_000)
        assert res.error == "" and res.scraped == 3 and res.added == 3
        target = {"job": "node", "instance": f"127.0.0.1:{ex.port}", "team": "a"}
        got = read(db, "m")
        assert got == {
            Labels({"__name__": "m", "a": "1", **target}): [(1_000_000, 1.5)],
            Labels({"__name__": "m", "a": "2", **target}): [(1_000_000, 2.0)],
        }
        assert one(db, "up") == [(1_000_000, 1.0)]
        assert one(db, "scrape_samples_scraped") == [(1_000_000, 3.0)]
        assert one(db, "scrape_samples_post_metric_relabeling") == [(1_000_000, 3.0)]
        assert one(db, "scrape_series_added") == [(1_000_000, 3.0)]
        ((t, d),) = one(db, "scrape_duration_seconds")
        assert t == 1_000_000 and 0 < d < 2
        # the same series again: none added
        await loop.scrape_once(1_060_000)
        assert one(db, "scrape_series_added")[-1] == (1_060_000, 0.0)
        assert loop.target.health == "up" and loop.target.last_scrape_ms == 1_060_000
        # the request asked for what Prometheus 3.5 asks for (captured from a real one)
        h = ex.headers[-1]
        assert h["Accept"] == (
            "application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.6,"
            "application/openmetrics-text;version=0.0.1;q=0.5,"
            "text/plain;version=1.0.0;escaping=allow-utf-8;q=0.4,"
            "text/plain;version=0.0.4;q=0.3,*/*;q=0.2"
        )
        assert h["X-Prometheus-Scrape-Timeout-Seconds"] == "2"
        assert h["Accept-Encoding"] == "gzip"

    run(job, body)


def test_staleness_when_series_or_target_disappears() -> None:
    async def body(ex: Exporter, db: DB, loop: ScrapeLoop) -> None:
        ex.body = "a 1\nb 2\n"
        await loop.scrape_once(10_000)
        ex.body = "a 3\n"
        await loop.scrape_once(20_000)
        (t1, v1), (t2, v2) = one(db, "b")
        assert (t1, v1) == (10_000, 2.0) and t2 == 20_000 and bits(v2) == STALE
        assert one(db, "a") == [(10_000, 1.0), (20_000, 3.0)]
        # a failing scrape: up 0 and every series of the last good scrape goes stale
        ex.status = 500
        res = await loop.scrape_once(30_000)
        assert res.error == "server returned HTTP status 500 Internal Server Error"
        assert loop.target.health == "down" and loop.target.last_error == res.error
        assert one(db, "up")[-1] == (30_000, 0.0)
        assert bits(one(db, "a")[-1][1]) == STALE
        assert one(db, "scrape_samples_scraped")[-1] == (30_000, 0.0)
        # recovering brings the series back
        ex.status = 200
        await loop.scrape_once(40_000)
        assert one(db, "a")[-1] == (40_000, 3.0)

    run(job, body)


def test_explicit_timestamps_honoured_or_not() -> None:
    async def body(ex: Exporter, db: DB, loop: ScrapeLoop) -> None:
        ex.body = "a 1 5000\nb 2\n"
        await loop.scrape_once(10_000)
        assert one(db, "a") == [(5_000, 1.0)]
        ex.body = "b 3\n"
        await loop.scrape_once(20_000)
        # a series with its own timestamps is not marked stale (track_timestamps_staleness off)
        assert one(db, "a") == [(5_000, 1.0)]

    run(job, body)

    async def body2(ex: Exporter, db: DB, loop: ScrapeLoop) -> None:
        ex.body = "a 1 5000\n"
        await loop.scrape_once(10_000)
        assert one(db, "a") == [(10_000, 1.0)]

    run(lambda ex: job(ex, honor_timestamps=False), body2)


def test_honor_labels_and_exported_prefix() -> None:
    async def body(ex: Exporter, db: DB, loop: ScrapeLoop) -> None:
        ex.body = 'm{job="inner",exported_job="x",team="b"} 1\n'
        await loop.scrape_once(1000)
        (lb,) = read(db, "m")
        assert lb.get("job") == "node" and lb.get("team") == "a"
        assert lb.get("exported_exported_job") == "inner" and lb.get("exported_job") == "x"
        assert lb.get("exported_team") == "b"

    run(job, body)

    async def body2(ex: Exporter, db: DB, loop: ScrapeLoop) -> None:
        ex.body = 'm{job="inner"} 1\n'
        await loop.scrape_once(1000)
        (lb,) = read(db, "m")
        assert lb.get("job") == "inner" and lb.get("team") == "a"

    run(lambda ex: job(ex, honor_labels=True), body2)
    t = Labels({"job": "j", "instance": "i"})
    assert merge_target_labels(Labels({"__name__": "x", "job": "y"}), t, True).get("job") == "y"


def test_sample_and_label_limits_fail_the_scrape() -> None:
    async def body(ex: Exporter, db: DB, loop: ScrapeLoop) -> None:
        ex.body = "a 1\nb 2\nc 3\n"
        res = await loop.scrape_once(1000)
        assert res.error == "sample limit exceeded"
        assert read(db, "a") == {} and one(db, "up") == [(1000, 0.0)]
        ex.body = "a 1\nb 2\n"
        assert (await loop.scrape_once(2000)).error == ""

    run(lambda ex: job(ex, sample_limit=2), body)

    async def body2(ex: Exporter, db: DB, loop: ScrapeLoop) -> None:
        ex.body = 'm{x="1",y="2"} 1\n'
        res = await loop.scrape_once(1000)
        assert res.error.startswith("label_limit exceeded (metric: m, number of labels: 6")
        assert read(db, "m") == {}

    run(lambda ex: job(ex, label_limit=5), body2)


def test_content_types_timeouts_and_body_limit() -> None:
    async def body(ex: Exporter, db: DB, loop: ScrapeLoop) -> None:
        ex.body = "# TYPE m gauge\nm 1\n# EOF\n"
        ex.content_type = "application/openmetrics-text; version=1.0.0; charset=utf-8"
        assert (await loop.scrape_once(1000)).error == ""
        assert one(db, "m") == [(1000, 1.0)]
        ex.content_type = "application/json"
        res = await loop.scrape_once(2000)
        assert res.error == (
            'received unsupported Content-Type "application/json" and no '
            "fallback_scrape_protocol specified for target"
        )
        ex.content_type = "text/plain"
        ex.body = "m 1 2 3 4\n"
        res = await loop.scrape_once(3000)
        assert res.error.startswith("line 1") and loop.target.health == "down"
        ex.body = "m 2\n"
        ex.delay = 0.5
        res = await loop.scrape_once(4000)
        assert "context deadline exceeded" in res.error
        ex.delay = 0
        ex.body = "m 3\n" * 200
        res = await loop.scrape_once(5000)
        assert res.error == "body size limit exceeded (limit: 100 bytes)"

    run(lambda ex: job(ex, scrape_timeout_ms=200, body_size_limit=100), body)

    async def body2(ex: Exporter, db: DB, loop: ScrapeLoop) -> None:
        ex.body = "m 1\n"
        ex.content_type = ""
        assert (await loop.scrape_once(1000)).error == ""

    run(lambda ex: job(ex, fallback_scrape_protocol="PrometheusText0.0.4"), body2)


def test_metric_relabel_configs() -> None:
    async def body(ex: Exporter, db: DB, loop: ScrapeLoop) -> None:
        ex.body = "keep_me 1\ndrop_me 2\n"
        res = await loop.scrape_once(1000)
        assert res.scraped == 2 and res.post_relabel == 1
        assert read(db, "drop_me") == {} and one(db, "keep_me") == [(1000, 1.0)]
        assert one(db, "scrape_samples_post_metric_relabeling") == [(1000, 1.0)]

    rc = RelabelConfig(source_labels=("__name__",), regex="drop_.*", action="drop")
    run(lambda ex: job(ex, metric_relabel_configs=(rc,)), body)


def test_reload_removes_targets_with_staleness_and_keeps_unchanged_pools() -> None:
    async def main() -> None:
        db = DB.open(None, DBOptions())
        pool = ThreadPoolExecutor(2)
        async with exporter() as ex:
            ex.body = "m 1\n"
            sc = job(ex)
            mgr = ScrapeManager(db, pool, MetadataStore())
            await mgr.apply(Config(scrape_configs=(sc,)))
            (loop,) = mgr.pools["node"].loops.values()
            await loop.scrape_once(1000)
            # same config: the same loop keeps running
            await mgr.apply(Config(scrape_configs=(sc,)))
            assert next(iter(mgr.pools["node"].loops.values())) is loop
            # changed interval: the loop is replaced without marking anything stale
            await mgr.apply(Config(scrape_configs=(replace(sc, scrape_interval_ms=1_800_000),)))
            (loop2,) = mgr.pools["node"].loops.values()
            assert loop2 is not loop and loop2.previous == loop.previous
            assert all(not math.isnan(v) for _, v in one(db, "m"))
            # job removed: its series and report series are marked stale
            await mgr.apply(Config())
            assert mgr.pools == {}
            assert bits(one(db, "m")[-1][1]) == STALE
            assert bits(one(db, "up")[-1][1]) == STALE
            await mgr.stop()
        pool.shutdown()

    asyncio.run(main())


def test_loop_scrapes_on_its_own_schedule() -> None:
    async def main() -> None:
        db = DB.open(None, DBOptions())
        pool = ThreadPoolExecutor(2)
        async with exporter() as ex:
            ex.body = "m 1\n"
            mgr = ScrapeManager(db, pool, MetadataStore())
            await mgr.apply(
                Config(scrape_configs=(job(ex, scrape_interval_ms=100, scrape_timeout_ms=100),))
            )
            for _ in range(100):
                await asyncio.sleep(0.05)
                if len(read(db, "m").get(next(iter(read(db, "m")), Labels()), [])) >= 3:
                    break
            samples = one(db, "m")
            assert len(samples) >= 3
            steps = {b[0] - a[0] for a, b in itertools.pairwise(samples)}
            assert steps <= {100, 200, 300}  # on the 100 ms grid (ticks may be skipped)
            await mgr.stop()
        pool.shutdown()

    asyncio.run(main())


def test_target_population() -> None:
    sc = ScrapeConfig(job_name="j", scrape_interval_ms=15_000, params=(("module", ("a", "b")),))
    t, disc, err = populate(sc, TargetGroup(("h:9",), Labels({"x": "1"}), "0"), "h:9")
    assert err == "" and t is not None
    assert disc.to_dict() == {
        "__address__": "h:9",
        "__metrics_path__": "/metrics",
        "__param_module": "a",
        "__scheme__": "http",
        "__scrape_interval__": "15s",
        "__scrape_timeout__": "10s",
        "job": "j",
        "x": "1",
    }
    assert t.labels.to_dict() == {"instance": "h:9", "job": "j", "x": "1"}
    assert t.url == "http://h:9/metrics?module=a&module=b"
    assert format_duration(90_000) == "1m30s" and format_duration(0) == "0s"
    assert accept_header(("PrometheusText0.0.4",)) == "text/plain;version=0.0.4;q=0.6,*/*;q=0.5"


def test_targets_api_shape() -> None:
    from omtsdb.compose import build_app
    from omtsdb.promql.engine import Engine

    async def main() -> None:
        db = DB.open(None, DBOptions())
        pool = ThreadPoolExecutor(2)
        async with exporter() as ex:
            ex.body = "m 1\n"
            mgr = ScrapeManager(db, pool, MetadataStore())
            drop = RelabelConfig(source_labels=("__address__",), regex="nohost.*", action="drop")
            sc = replace(
                job(ex),
                relabel_configs=(drop,),
                static_configs=(StaticConfig((f"127.0.0.1:{ex.port}", "nohost:1")),),
            )
            await mgr.apply(Config(scrape_configs=(sc,)))
            (loop,) = mgr.pools["node"].loops.values()
            await loop.scrape_once(1_795_423_383_674)
            app = build_app(db, Engine(), scraper=mgr)
            from aiohttp.test_utils import TestClient, TestServer

            async with TestClient(TestServer(app)) as c:
                r = await c.get("/api/v1/targets")
                body = await r.json()
                await c.get("/api/v1/scrape_pools")
                pools = await (await c.get("/api/v1/scrape_pools")).json()
                dropped_only = await (await c.get("/api/v1/targets?state=dropped")).json()
            await mgr.stop()
        pool.shutdown()
        data = body["data"]
        (t,) = data["activeTargets"]
        assert set(t) == {
            "discoveredLabels",
            "labels",
            "scrapePool",
            "scrapeUrl",
            "globalUrl",
            "lastError",
            "lastScrape",
            "lastScrapeDuration",
            "health",
            "scrapeInterval",
            "scrapeTimeout",
        }
        assert t["health"] == "up" and t["lastScrape"] == "2026-11-23T08:43:03.674Z"
        assert t["scrapeInterval"] == "1h" and t["scrapeTimeout"] == "2s"
        assert data["droppedTargets"][0]["discoveredLabels"]["__address__"] == "nohost:1"
        assert data["droppedTargetCounts"] == {"node": 1}
        assert pools["data"] == {"scrapePools": ["node"]}
        assert dropped_only["data"]["activeTargets"] == []

    asyncio.run(main())


@pytest.mark.parametrize(
    "ms,text", [(1000, "1s"), (3_600_000, "1h"), (5400_000, "1h30m"), (1, "1ms")]
)
def test_format_duration(ms: int, text: str) -> None:
    assert format_duration(ms) == text


def test_file_sd_picks_up_changes_and_keeps_groups_of_a_broken_file(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    import json

    from omtsdb.config.model import FileSDConfig
    from omtsdb.scrape import manager as manager_mod

    monkeypatch.setattr(manager_mod, "FILE_POLL_S", 0.05)
    f = tmp_path / "targets.json"

    def write(*targets: str) -> None:
        f.write_text(json.dumps([{"targets": list(targets), "labels": {"zone": "z1"}}]))

    async def wait_targets(mgr: ScrapeManager, n: int) -> list[Any]:
        for _ in range(100):
            ts = mgr.active_targets()
            if len(ts) == n:
                return ts
            await asyncio.sleep(0.05)
        raise AssertionError(f"expected {n} targets, have {mgr.active_targets()}")

    async def main() -> None:
        db = DB.open(None, DBOptions())
        pool = ThreadPoolExecutor(2)
        write("127.0.0.1:1")
        sc = ScrapeConfig(
            job_name="fsd",
            scrape_interval_ms=3_600_000,
            file_sd_configs=(FileSDConfig((str(tmp_path / "*.json"),), 3_600_000),),
        )
        mgr = ScrapeManager(db, pool, MetadataStore())
        await mgr.apply(Config(scrape_configs=(sc,)))
        (t,) = await wait_targets(mgr, 1)
        assert t.labels.get("zone") == "z1" and t.discovered.get("__meta_filepath") == str(f)
        write("127.0.0.1:1", "127.0.0.1:2")
        await wait_targets(mgr, 2)
        f.write_text("[{not json")  # broken: the previous groups stay
        await asyncio.sleep(0.3)
        assert len(mgr.active_targets()) == 2
        write("127.0.0.1:3")
        (t,) = await wait_targets(mgr, 1)
        assert t.labels.get("instance") == "127.0.0.1:3"
        await mgr.stop()
        pool.shutdown()

    asyncio.run(main())


def test_connection_refused_is_worded_as_prometheus() -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed once the block ends: nobody listens there

    async def main() -> None:
        db = DB.open(None, DBOptions())
        pool = ThreadPoolExecutor(2)
        sc = ScrapeConfig(
            job_name="node",
            scrape_interval_ms=3_600_000,
            static_configs=(StaticConfig((f"127.0.0.1:{port}",)),),
        )
        mgr = ScrapeManager(db, pool, MetadataStore())
        await mgr.apply(Config(scrape_configs=(sc,)))
        (loop,) = mgr.pools["node"].loops.values()
        res = await loop.scrape_once(1000)
        assert res.error == (
            f'Get "http://127.0.0.1:{port}/metrics": dial tcp 127.0.0.1:{port}: '
            "connect: connection refused"
        )
        assert one(db, "up") == [(1000, 0.0)]
        await mgr.stop()
        pool.shutdown()

    asyncio.run(main())
