"""/federate in process: selection, union, staleness, lookback, external labels, ordering,
errors, formats and escaping (the byte-for-byte comparison with Prometheus is in
test_federate_peer.py)."""

from __future__ import annotations

import math
import struct
from collections.abc import Awaitable, Callable
from typing import Any

import numpy as np
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

from omtsdb.api.federate import FEDERATE
from omtsdb.api.runtime import RUNTIME
from omtsdb.api.services import APIOptions
from omtsdb.compose import build_app
from omtsdb.model.exposition.negotiate import escape_name, negotiate
from omtsdb.model.labels import Labels
from omtsdb.promql.engine import Engine, EngineOpts
from omtsdb.tsdb.db import DB
from tests.helpers import run_client

NOW_MS = 1_700_000_000_000
STALE = struct.unpack("<d", struct.pack("<Q", 0x7FF0000000000002))[0]
TEXT_TYPE = "text/plain; version=0.0.4; charset=utf-8; escaping=underscores"
PROTO_ACCEPT = (
    "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited"
)


def make_db() -> DB:
    db = DB.open(None)
    app = db.appender()

    def put(labels: dict[str, str], *samples: tuple[int, float]) -> None:
        ts = np.array([NOW_MS + t for t, _ in samples], np.int64)
        vs = np.array([v for _, v in samples], np.float64)
        app.append(Labels(labels), ts, vs)

    put({"__name__": "up", "job": "node", "instance": "b"}, (-20_000, 0.0), (-5_000, 1.0))
    put({"__name__": "up", "job": "node", "instance": "a"}, (-5_000, 1.0))
    put({"__name__": "up", "job": "api", "instance": "a"}, (-1_000, 0.0))
    put({"__name__": "http_requests_total", "job": "api", "code": "200"}, (-2_000, 1027.0))
    put({"__name__": "Zeta", "job": "api"}, (-2_000, 1e21))
    put({"__name__": "gone", "job": "api"}, (-60_000, 1.0), (-30_000, STALE))
    put({"__name__": "back", "job": "api"}, (-60_000, STALE), (-30_000, 2.5))
    put({"__name__": "old", "job": "api"}, (-300_001, 1.0))
    put({"__name__": "edge", "job": "api"}, (-300_000, 4.0))
    put({"__name__": "future", "job": "api"}, (1, 9.0))
    put({"__name__": "weird", "job": "api", "region": "own"}, (-1_000, -0.0), (-500, 1e-7))
    put({"__name__": "negzero", "job": "api"}, (-1_000, -0.0))
    put({"__name__": "esc", "job": "api", "path": 'a"b\\c\nd'}, (-1_000, math.nan))
    put({"__name__": "my.metric", "job": "api", "my.label": "x"}, (-1_000, 7.0))
    app.commit()
    return db


def run(
    fn: Callable[[TestClient[Any, Any]], Awaitable[None]],
    external: dict[str, str] | None = None,
    lookback_ms: int = 300_000,
) -> None:
    def make() -> web.Application:
        opts = APIOptions(external_labels=Labels(external or {}))
        app = build_app(make_db(), Engine(EngineOpts(lookback_delta_ms=lookback_ms)), opts)
        app[FEDERATE].clock = lambda: NOW_MS / 1000
        return app

    run_client(make, fn)


async def fed(
    c: TestClient[Any, Any], *matches: str, accept: str | None = None
) -> tuple[int, str, str]:
    headers = {"Accept": accept} if accept else {}
    r = await c.get("/federate", params=[("match[]", m) for m in matches], headers=headers)
    return r.status, r.headers["Content-Type"], await r.text()


def test_selection_union_and_sorting() -> None:
    async def body(c: TestClient[Any, Any]) -> None:
        st, ctype, text = await fed(c, 'up{job="node"}', "http_requests_total", "up")
        assert st == 200 and ctype == TEXT_TYPE
        assert text == (
            "# TYPE http_requests_total untyped\n"
            'http_requests_total{code="200",job="api",instance=""} 1027 1699999998000\n'
            "# TYPE up untyped\n"
            'up{instance="a",job="api"} 0 1699999999000\n'
            'up{instance="a",job="node"} 1 1699999995000\n'
            'up{instance="b",job="node"} 1 1699999995000\n'
        )
        # a selector matching nothing, and one matching every series, unioned
        _, _, everything = await fed(c, "nothing_here", '{job=~".+"}')
        names = [ln.split()[2] for ln in everything.splitlines() if ln.startswith("# TYPE")]
        assert names == sorted(names) and names[0] == "Zeta"
        assert "gone" not in names and "old" not in names and "future" not in names
        # a selector whose matchers all match the empty label still selects (as Prometheus)
        _, _, same = await fed(c, '{job=""}', '{foo=""}')
        assert same == everything

    run(body)


def test_staleness_and_lookback() -> None:
    async def body(c: TestClient[Any, Any]) -> None:
        _, _, text = await fed(c, "gone", "back", "old", "edge", "future")
        # newest sample stale -> left out; an older stale marker does not matter; the sample
        # exactly lookback before now is in, one ms older is out, the future one is out
        assert text == (
            "# TYPE back untyped\n"
            'back{job="api",instance=""} 2.5 1699999970000\n'
            "# TYPE edge untyped\n"
            'edge{job="api",instance=""} 4 1699999700000\n'
        )

    run(body)

    async def short(c: TestClient[Any, Any]) -> None:
        _, _, text = await fed(c, "up", "back")
        assert "back" not in text  # 30 s old, lookback 10 s
        assert text.count("\nup{") == 3

    run(short, lookback_ms=10_000)


def test_external_labels_and_reload() -> None:
    async def body(c: TestClient[Any, Any]) -> None:
        _, _, text = await fed(c, "weird", "up")
        assert text == (
            "# TYPE up untyped\n"
            'up{instance="a",job="api",region="eu",zone="z1"} 0 1699999999000\n'
            'up{instance="a",job="node",region="eu",zone="z1"} 1 1699999995000\n'
            'up{instance="b",job="node",region="eu",zone="z1"} 1 1699999995000\n'
            "# TYPE weird untyped\n"
            'weird{job="api",region="own",instance="",zone="z1"} 1e-07 1699999999500\n'
        )
        # a config reload swaps the external labels; an external "instance" replaces ""
        c.server.app[RUNTIME].update(external_labels=Labels({"instance": "fed", "dc": "x"}))
        _, _, text = await fed(c, "weird", "http_requests_total")
        assert text == (
            "# TYPE http_requests_total untyped\n"
            'http_requests_total{code="200",job="api",dc="x",instance="fed"} 1027 1699999998000\n'
            "# TYPE weird untyped\n"
            'weird{job="api",region="own",dc="x",instance="fed"} 1e-07 1699999999500\n'
        )

    run(body, external={"region": "eu", "zone": "z1", "job": "ignored-when-present"})


def test_values_escaping_and_utf8_names() -> None:
    async def body(c: TestClient[Any, Any]) -> None:
        _, _, text = await fed(c, "Zeta", "esc", '{"my.metric"}')
        assert text == (
            "# TYPE Zeta untyped\n"
            'Zeta{job="api",instance=""} 1e+21 1699999998000\n'
            "# TYPE esc untyped\n"
            'esc{job="api",path="a\\"b\\\\c\\nd",instance=""} NaN 1699999999000\n'
            "# TYPE my_metric untyped\n"
            'my_metric{job="api",my_label="x",instance=""} 7 1699999999000\n'
        )
        utf8 = "text/plain;version=0.0.4;escaping=allow-utf-8"
        _, ctype, text = await fed(c, '{"my.metric"}', accept=utf8)
        assert ctype == "text/plain; version=0.0.4; charset=utf-8; escaping=allow-utf-8"
        assert text == (
            '# TYPE "my.metric" untyped\n'
            '{"my.metric",job="api","my.label"="x",instance=""} 7 1699999999000\n'
        )
        _, _, text = await fed(c, '{"my.metric"}', accept="text/plain;escaping=values")
        assert text.startswith("# TYPE U__my_2e_metric untyped\nU__my_2e_metric{job=")
        _, _, text = await fed(c, "weird", "negzero")
        assert 'negzero{job="api",instance=""} 0 1699999999000\n' in text  # not -0
        assert " 1e-07 " in text  # newest of (-0, 1e-7)

    run(body)


def test_bad_and_missing_match() -> None:
    async def body(c: TestClient[Any, Any]) -> None:
        r = await c.get("/federate")
        assert r.status == 200 and await r.read() == b""
        assert r.headers["Content-Type"] == TEXT_TYPE
        for bad, msg in (
            ("up{", "1:4: parse error: unexpected end of input inside braces\n"),
            ('foo{a="b', "1:7: parse error: unterminated quoted string\n"),
            ("", "unknown position: parse error: unexpected end of input\n"),
            ("  ", "1:3: parse error: unexpected end of input\n"),
        ):
            r = await c.get("/federate", params=[("match[]", "up"), ("match[]", bad)])
            assert r.status == 400, bad
            assert r.headers["Content-Type"] == "text/plain; charset=utf-8"
            assert await r.text() == msg
        for bad in ("rate(up[5m])", "up[5m]", "up offset 5m", '{a=~"("}'):
            r = await c.get("/federate", params={"match[]": bad})
            assert r.status == 400, bad

    run(body)


def test_post_form() -> None:
    async def body(c: TestClient[Any, Any]) -> None:
        r = await c.post("/federate?match[]=edge", data={"match[]": "back"})
        assert r.status == 200
        text = await r.text()
        assert "\nback{" in text and "\nedge{" in text

    run(body)


def _metric_family_class() -> Any:
    """io.prometheus.client.MetricFamily (the subset federation writes), built independently
    of omtsdb's encoder."""
    F = descriptor_pb2.FieldDescriptorProto
    fdp = descriptor_pb2.FileDescriptorProto(
        name="test_metrics.proto", package="io.prometheus.client", syntax="proto2"
    )
    lp = fdp.message_type.add(name="LabelPair")
    lp.field.add(name="name", number=1, type=F.TYPE_STRING, label=F.LABEL_OPTIONAL)
    lp.field.add(name="value", number=2, type=F.TYPE_STRING, label=F.LABEL_OPTIONAL)
    un = fdp.message_type.add(name="Untyped")
    un.field.add(name="value", number=1, type=F.TYPE_DOUBLE, label=F.LABEL_OPTIONAL)
    m = fdp.message_type.add(name="Metric")
    m.field.add(
        name="label",
        number=1,
        type=F.TYPE_MESSAGE,
        label=F.LABEL_REPEATED,
        type_name=".io.prometheus.client.LabelPair",
    )
    m.field.add(
        name="untyped",
        number=5,
        type=F.TYPE_MESSAGE,
        label=F.LABEL_OPTIONAL,
        type_name=".io.prometheus.client.Untyped",
    )
    m.field.add(name="timestamp_ms", number=6, type=F.TYPE_INT64, label=F.LABEL_OPTIONAL)
    mf = fdp.message_type.add(name="MetricFamily")
    mf.field.add(name="name", number=1, type=F.TYPE_STRING, label=F.LABEL_OPTIONAL)
    mf.field.add(name="type", number=3, type=F.TYPE_INT32, label=F.LABEL_OPTIONAL)
    mf.field.add(
        name="metric",
        number=4,
        type=F.TYPE_MESSAGE,
        label=F.LABEL_REPEATED,
        type_name=".io.prometheus.client.Metric",
    )
    pool = descriptor_pool.DescriptorPool()
    pool.Add(fdp)
    return message_factory.GetMessageClass(
        pool.FindMessageTypeByName("io.prometheus.client.MetricFamily")
    )


def _read_delimited(data: bytes, cls: Any) -> list[Any]:
    out, pos = [], 0
    while pos < len(data):
        n = shift = 0
        while True:
            b = data[pos]
            pos += 1
            n |= (b & 0x7F) << shift
            shift += 7
            if b < 0x80:
                break
        msg = cls()
        msg.ParseFromString(data[pos : pos + n])
        out.append(msg)
        pos += n
    return out


def test_protobuf() -> None:
    cls = _metric_family_class()

    async def body(c: TestClient[Any, Any]) -> None:
        r = await c.get(
            "/federate",
            params=[("match[]", "up"), ("match[]", "esc")],
            headers={"Accept": PROTO_ACCEPT},
        )
        assert r.status == 200
        assert r.headers["Content-Type"] == PROTO_ACCEPT.replace(";", "; ") + (
            "; escaping=underscores"
        )
        fams = _read_delimited(await r.read(), cls)
        assert [f.name for f in fams] == ["esc", "up"]
        assert all(f.type == 3 for f in fams)  # UNTYPED
        up = fams[1]
        assert [[(lp.name, lp.value) for lp in m.label] for m in up.metric] == [
            [("instance", "a"), ("job", "api"), ("dc", "x")],
            [("instance", "a"), ("job", "node"), ("dc", "x")],
            [("instance", "b"), ("job", "node"), ("dc", "x")],
        ]
        assert [(m.untyped.value, m.timestamp_ms) for m in up.metric] == [
            (0.0, NOW_MS - 1000),
            (1.0, NOW_MS - 5000),
            (1.0, NOW_MS - 5000),
        ]
        assert math.isnan(fams[0].metric[0].untyped.value)
        assert [(lp.name, lp.value) for lp in fams[0].metric[0].label] == [
            ("job", "api"),
            ("path", 'a"b\\c\nd'),
            ("dc", "x"),
            ("instance", ""),
        ]

    run(body, external={"dc": "x"})


@pytest.mark.parametrize(
    ("accept", "fmt", "escaping"),
    [
        ("", "text", "underscores"),
        ("*/*", "text", "underscores"),
        ("application/json", "text", "underscores"),
        ("text/plain;version=1.0.0", "text", "underscores"),
        ("text/plain;version=0.0.4;escaping=allow-utf-8", "text", "allow-utf-8"),
        ("application/openmetrics-text;version=1.0.0;escaping=dots", "text", "dots"),
        ("text/plain;escaping=bogus", "text", "underscores"),
        (PROTO_ACCEPT, "proto-delimited", "underscores"),
        (PROTO_ACCEPT + ";q=0.7,text/plain;version=0.0.4;q=0.3", "proto-delimited", "underscores"),
        ("text/plain;q=0.9," + PROTO_ACCEPT, "proto-delimited", "underscores"),
        (PROTO_ACCEPT.replace("delimited", "text"), "text", "underscores"),
    ],
)
def test_negotiate(accept: str, fmt: str, escaping: str) -> None:
    n = negotiate(accept)
    assert (n.format, n.escaping) == (fmt, escaping)


@pytest.mark.parametrize(
    ("name", "scheme", "want"),
    [
        ("ok_name:x", "underscores", "ok_name:x"),
        ("ok_name", "dots", "ok_name"),
        ("my.metric", "underscores", "my_metric"),
        ("my.metric_x", "dots", "my_dot_metric__x"),
        ("my.metric_x", "values", "U__my_2e_metric__x"),
        ("1abc", "underscores", "_abc"),
        ("1abc", "values", "U___31_abc"),
        ("héllo wörld", "underscores", "h_llo_w_rld"),
        ("héllo", "values", "U__h_e9_llo"),
        ("a-b", "dots", "a__b"),
        ("my.metric", "allow-utf-8", "my.metric"),
    ],
)
def test_escape_name(name: str, scheme: str, want: str) -> None:
    assert escape_name(name, scheme) == want
