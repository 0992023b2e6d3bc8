"""/federate and the status endpoints against the real Prometheus 3.5.

1. The same series are remote-written into a real Prometheus and into omtsdb (both with the
   same external labels); their /federate answers must be byte-identical for each Accept
   variant, and /api/v1/status/tsdb must agree.
2. A real Prometheus federates from omtsdb (``metrics_path: /federate``, ``match[]``,
   ``honor_labels: true``) and must store the federated series with their labels and values.
"""

from __future__ import annotations

import asyncio
import json
import struct
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from aiohttp import web

from omtsdb.api.services import APIOptions
from omtsdb.compose import build_app
from omtsdb.model.exposition.floats import format_json_sample
from omtsdb.model.labels import Labels
from omtsdb.promql.engine import Engine
from omtsdb.remote.build import snappy, write_request_v1
from omtsdb.tsdb.db import DB
from tests.api.test_peer_prometheus import free_port, wait_ready
from tests.conftest import peer_bin
from tests.helpers import stop_process

STALE = struct.unpack("<d", struct.pack("<Q", 0x7FF0000000000002))[0]
PROTO = "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited"


@contextmanager
def serving(app: web.Application) -> Iterator[int]:
    """Run ``app`` on 127.0.0.1 (ephemeral port) in a background event loop."""
    port = free_port()
    loop = asyncio.new_event_loop()
    runner = web.AppRunner(app, access_log=None)
    ready = threading.Event()

    def main() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(runner.setup())
        loop.run_until_complete(web.TCPSite(runner, "127.0.0.1", port).start())
        ready.set()
        loop.run_forever()

    t = threading.Thread(target=main, name="omtsdb-test-server", daemon=True)
    t.start()
    assert ready.wait(20), "omtsdb test server did not start"
    try:
        yield port
    finally:
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(20)
        loop.call_soon_threadsafe(loop.stop)
        t.join(20)
        loop.close()


@contextmanager
def prometheus(tmp: Path, config: str, *flags: str) -> Iterator[int]:
    port = free_port()
    cfg = tmp / "prometheus.yml"
    cfg.write_text(config)
    p = subprocess.Popen(
        [
            str(peer_bin("prometheus")),
            f"--config.file={cfg}",
            f"--storage.tsdb.path={tmp / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            *flags,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_ready(f"http://127.0.0.1:{port}/-/ready", p, timeout=30)
        yield port
    finally:
        stop_process(p)


def get(url: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    req = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=20) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


def remote_write(port: int, series: list[Any]) -> None:
    req = urllib.request.Request(
        f"http://127.0.0.1:{port}/api/v1/write",
        data=snappy(write_request_v1(series)),
        headers={
            "Content-Type": "application/x-protobuf",
            "Content-Encoding": "snappy",
            "X-Prometheus-Remote-Write-Version": "0.1.0",
        },
    )
    with urllib.request.urlopen(req, timeout=20) as r:
        assert r.status == 204


def crafted(now: int) -> list[Any]:
    vals = [1.0, 0.1, 1e21, 1e-7, 123456789012.0, float("inf"), float("-inf"), float("nan")]
    vals += [1.5e300, 5e-324, 100.0, 0.30000000000000004, 12345678.9, 1e6, 1e-5, 2.0**53]
    series: list[Any] = [
        (
            {"__name__": "fed_vals", "idx": f"{i:02d}", "instance": "h"},
            [(now - 9000, 7.0), (now - 1000, v)],
        )
        for i, v in enumerate(vals)
    ]
    series += [
        ({"__name__": "fed_noinst", "job": "j"}, [(now - 2000, 3.0)]),
        ({"__name__": "fed_region", "region": "mine", "zone": "z"}, [(now - 2000, 4.0)]),
        ({"__name__": "fed_stale", "a": "1"}, [(now - 5000, 1.0), (now - 1000, STALE)]),
        ({"__name__": "fed_stale", "a": "2"}, [(now - 5000, 1.0)]),
        ({"__name__": "fed_old", "a": "1"}, [(now - 400_000, 1.0)]),
        ({"__name__": "fed_esc", "l": 'a"b\\c\nd'}, [(now - 2000, 5.0)]),
        ({"__name__": "fed.utf8", "my.label": "x"}, [(now - 2000, 6.0)]),
        ({"__name__": "caps", "A": "1", "b": "2"}, [(now - 2000, 6.0)]),
        ({"__name__": "a_fed", "b": "x"}, [(now - 2000, 6.0)]),
        ({"__name__": "Z_fed", "b": "x"}, [(now - 2000, 6.0)]),
        ({"__name__": "fed:rule", "b": "x"}, [(now - 2000, 6.0)]),
        ({"__name__": "fed_bucket", "le": "+Inf", "job": "h"}, [(now - 3000, 12.0)]),
    ]
    return series


def test_federate_and_tsdb_status_identical_to_prometheus() -> None:
    with tempfile.TemporaryDirectory() as d:
        cfg = "global:\n  external_labels:\n    region: eu\n    zone: z1\n"
        opts = APIOptions(external_labels=Labels({"region": "eu", "zone": "z1"}))
        app = build_app(DB.open(None), Engine(), opts)
        with (
            prometheus(Path(d), cfg, "--web.enable-remote-write-receiver") as pp,
            serving(app) as op,
        ):
            series = crafted(int(time.time() * 1000))
            remote_write(pp, series)
            remote_write(op, series)
            q = urllib.parse.urlencode(
                [("match[]", '{__name__=~".+fed.*|fed.*"}'), ("match[]", "fed_vals")]
            )
            for accept in (
                "",
                "text/plain;version=0.0.4;escaping=allow-utf-8",
                "text/plain;version=0.0.4;escaping=dots",
                "text/plain;version=0.0.4;escaping=values",
                PROTO,
                PROTO + ";escaping=allow-utf-8",
                PROTO + ";q=0.5,text/plain;version=0.0.4;q=0.4",
                "application/openmetrics-text;version=1.0.0,text/plain;q=0.5",
            ):
                h = {"Accept": accept} if accept else {}
                ps, ph, pb = get(f"http://127.0.0.1:{pp}/federate?{q}", h)
                os_, oh, ob = get(f"http://127.0.0.1:{op}/federate?{q}", h)
                assert (os_, oh["Content-Type"]) == (ps, ph["Content-Type"]), accept
                assert ob == pb, accept
                assert pb.count(b"idx") == 16  # stale, old, NaN... all there or not as planned
            # A label sorting before __name__ makes Prometheus's (unstable) sort by name
            # reorder series within a family: same lines, maybe another order
            q = urllib.parse.urlencode([("match[]", "caps"), ("match[]", "fed_vals")])
            _, _, pb = get(f"http://127.0.0.1:{pp}/federate?{q}")
            _, _, ob = get(f"http://127.0.0.1:{op}/federate?{q}")
            assert sorted(ob.splitlines()) == sorted(pb.splitlines())
            assert ob.startswith(b'# TYPE caps untyped\ncaps{A="1",b="2",instance="",')
            for bad in ("up{", "rate(up[1m])", "", "up[5m]"):
                qs = urllib.parse.urlencode({"match[]": bad})
                ps, ph, pb = get(f"http://127.0.0.1:{pp}/federate?{qs}")
                os_, oh, ob = get(f"http://127.0.0.1:{op}/federate?{qs}")
                assert (
                    (os_, oh["Content-Type"])
                    == (ps, ph["Content-Type"])
                    == (
                        400,
                        "text/plain; charset=utf-8",
                    )
                ), bad
            for path in ("/api/v1/status/tsdb?limit=1000", "/api/v1/status/walreplay"):
                ps, _, pb = get(f"http://127.0.0.1:{pp}{path}")
                os_, _, ob = get(f"http://127.0.0.1:{op}{path}")
                pj, oj = json.loads(pb), json.loads(ob)
                assert ps == os_ == 200
                # Prometheus orders ties arbitrarily: compare the top lists as sorted lists
                for k, v in pj["data"].items():
                    if isinstance(v, list):
                        pj["data"][k] = sorted(v, key=lambda e: (-e["value"], e["name"]))
                assert oj == pj, path
            ps, _, pb = get(f"http://127.0.0.1:{pp}/api/v1/status/tsdb?limit=3")
            os_, _, ob = get(f"http://127.0.0.1:{op}/api/v1/status/tsdb?limit=3")
            pj, oj = json.loads(pb)["data"], json.loads(ob)["data"]
            for k in pj:
                if isinstance(pj[k], list):  # same length and the same counts at the top
                    assert [e["value"] for e in oj[k]] == [e["value"] for e in pj[k]], k
            ps, _, pb = get(f"http://127.0.0.1:{pp}/api/v1/status/config")
            os_, _, ob = get(f"http://127.0.0.1:{op}/api/v1/status/config")
            assert ps == os_ == 200
            assert json.loads(ob)["data"].keys() == json.loads(pb)["data"].keys() == {"yaml"}


def _query(port: int, q: str, t: float) -> list[dict[str, Any]]:
    qs = urllib.parse.urlencode({"query": q, "time": f"{t:.3f}"})
    st, _, body = get(f"http://127.0.0.1:{port}/api/v1/query?{qs}")
    js = json.loads(body)
    assert st == 200 and js["status"] == "success", js
    return list(js["data"]["result"])


@pytest.mark.slow
def test_prometheus_federates_from_omtsdb() -> None:
    now = int(time.time() * 1000)
    t = now - 2000
    db = DB.open(None)
    a = db.appender()
    data = [
        ({"__name__": "fed_metric", "job": "app", "instance": "i1", "path": "/a"}, 42.0),
        ({"__name__": "fed_metric", "job": "app", "instance": "i2", "path": "/b"}, 0.125),
        ({"__name__": "fed_big", "job": "app", "instance": "i1"}, 1.2345678901234567e300),
        ({"__name__": "fed_noinst", "job": "batch"}, 7.0),
        ({"__name__": "fed_bucket", "job": "app", "instance": "i1", "le": "0.5"}, 3.0),
        ({"__name__": "other_metric", "job": "app", "instance": "i1"}, 1.0),
    ]
    for lb, v in data:
        a.append(Labels(lb), np.array([t - 10_000, t], np.int64), np.array([v / 2, v]))
    a.append(
        Labels({"__name__": "fed_stale", "job": "app", "instance": "i1"}),
        np.array([t - 10_000, t], np.int64),
        np.array([1.0, STALE]),
    )
    a.commit()
    app = build_app(db, Engine(), APIOptions(external_labels=Labels({"dc": "omt"})))
    with tempfile.TemporaryDirectory() as d, serving(app) as op:
        cfg = f"""
global:
  scrape_interval: 1s
  scrape_timeout: 1s
scrape_configs:
  - job_name: federate
    honor_labels: true
    metrics_path: /federate
    params:
      'match[]': ['{{__name__=~"fed_.*"}}']
    static_configs:
      - targets: ['127.0.0.1:{op}']
"""
        with prometheus(Path(d), cfg) as pp:
            got: list[dict[str, Any]] = []
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                got = _query(pp, '{dc="omt"}', t / 1000)
                if len(got) >= 5:
                    break
                time.sleep(0.5)
            by_labels = {
                tuple(sorted(r["metric"].items())): (r["value"][0], r["value"][1]) for r in got
            }
            want = {
                tuple(sorted({**lb, "dc": "omt"}.items())): (t / 1000, format_json_sample(v))
                for lb, v in data
                if lb["__name__"].startswith("fed_") and lb["__name__"] != "fed_noinst"
            }
            # the exposition carries instance="" for it: with honor_labels that empty label
            # wins over the target's instance, and an empty label is no label
            noinst = {"__name__": "fed_noinst", "job": "batch", "dc": "omt"}
            want[tuple(sorted(noinst.items()))] = (t / 1000, "7")
            assert by_labels == want
            up = _query(pp, 'up{job="federate"}', time.time())
            assert [r["value"][1] for r in up] == ["1"]
            assert _query(pp, "fed_stale", t / 1000) == []
