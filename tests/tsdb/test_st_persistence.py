"""Start timestamps (ST) on disk: WAL records and replay, checkpoints, block chunks,
compaction, and queries over all of it; files without ST keep their old bytes."""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Any

import numpy as np
from aiohttp.test_utils import TestClient

from omtsdb.compose import build_app
from omtsdb.model import Labels, Matcher, MatchType
from omtsdb.promql.engine import Engine, EngineOpts
from omtsdb.tsdb.block.format import CHUNK_ST
from omtsdb.tsdb.block.reader import CHUNK_CACHE, Block
from omtsdb.tsdb.block.writer import write_block
from omtsdb.tsdb.codec.chunk import FLAG_ST, decode_chunk_st, encode_chunk
from omtsdb.tsdb.db import DB, DBOptions
from omtsdb.tsdb.wal.records import TYPE_SAMPLES, TYPE_SAMPLES_ST, SamplesRecord, encode
from omtsdb.tsdb.wal.records import iter_records as read_records
from tests.helpers import run_client

HOUR = 3_600_000
RE = MatchType.RE
ANY = Matcher(RE, "__name__", ".+")


def lb(name: str, **kw: str) -> Labels:
    return Labels({"__name__": name, **kw})


def series_data(hours: int) -> list[tuple[Labels, Any, Any, Any]]:
    """A cumulative counter restarting every 45 minutes (ST = restart time), a delta series
    (ST = previous sample), and a counter without ST."""
    ts = np.arange(0, hours * HOUR, 15_000, dtype=np.int64)
    restart = ts // (45 * 60_000) * (45 * 60_000) - 1
    cum = (ts - restart).astype(np.float64) / 1000
    delta_st = np.concatenate(([ts[0] - 15_000], ts[:-1]))
    return [
        (lb("cum_total"), ts, cum, restart),
        (lb("delta_total"), ts, np.full(ts.size, 15.0), delta_st),
        (lb("plain_total"), ts, np.arange(ts.size, dtype=np.float64), None),
    ]


def append_hourly(db: DB, data: list[tuple[Labels, Any, Any, Any]]) -> None:
    """Append ``data`` (``series_data``) in commits of an hour (240 samples), letting the head
    cut blocks as it goes."""
    for k in range(0, data[0][1].size, 240):
        app = db.appender()
        for name, ts, vs, st in data:
            app.append(
                name, ts[k : k + 240], vs[k : k + 240], None if st is None else st[k : k + 240]
            )
        app.commit()
        db.wait_for_compaction()


def by_labels(db: DB, mint: int = 0, maxt: int = 10**12) -> dict[Labels, Any]:
    return {s.labels: s for s in db.querier(mint, maxt).select([ANY], mint, maxt)}


def check(got: dict[Labels, Any], data: list[tuple[Labels, Any, Any, Any]], a: int, b: int) -> None:
    for name, ts, vs, st in data:
        m = (ts >= a) & (ts <= b)
        s = got[name]
        assert np.array_equal(s.ts, ts[m]) and np.array_equal(s.vs, vs[m])
        if st is None:
            assert s.st is None
        else:
            assert s.st is not None and np.array_equal(s.st, st[m]), name


def test_chunk_without_st_is_unchanged_and_flagged_chunk_round_trips() -> None:
    ts = np.arange(10, dtype=np.int64) * 1000
    vs = np.arange(10, dtype=np.float64)
    plain = encode_chunk(ts, vs)
    assert plain == encode_chunk(ts, vs, st=np.zeros(10, np.int64))  # unknown everywhere
    assert not plain[3] & FLAG_ST and decode_chunk_st(plain)[2] is None
    for st in (np.full(10, -7, np.int64), ts - 1000, np.where(ts > 4000, 4500, 0)):
        buf = encode_chunk(ts, vs, st=st)
        assert buf[3] & FLAG_ST
        t, v, s = decode_chunk_st(buf)
        assert np.array_equal(t, ts) and np.array_equal(v, vs) and np.array_equal(s, st)


def test_wal_record_type_only_with_st_and_replay(tmp_path: Path) -> None:
    refs = np.array([1, 1], np.uint64)
    ts = np.array([1, 2], np.int64)
    vs = np.array([1.0, 2.0])
    old = encode(SamplesRecord(refs, ts, vs))
    assert old[0] == TYPE_SAMPLES and old == encode(
        SamplesRecord(refs, ts, vs, np.zeros(2, np.int64))
    )
    new = encode(SamplesRecord(refs, ts, vs, np.array([0, 1], np.int64)))
    assert new[0] == TYPE_SAMPLES_ST and struct.unpack_from("<I", new, 1)[0] == 4 + 32 * 2
    (rec,), _, err = read_records(new)
    assert err is None and isinstance(rec, SamplesRecord) and rec.st is not None
    assert rec.st.tolist() == [0, 1]

    data = series_data(1)
    opts = DBOptions(fsync=False)
    with DB.open(tmp_path, opts) as db:
        for k in range(0, data[0][1].size, 37):  # several commits, ST series mixed with not
            app = db.appender()
            for name, ts_, vs_, st in data:
                app.append(
                    name, ts_[k : k + 37], vs_[k : k + 37], None if st is None else st[k : k + 37]
                )
            app.commit()
    with DB.open(tmp_path, opts) as db:
        assert db.replay_stats.samples == sum(d[1].size for d in data)
        check(by_labels(db), data, 0, HOUR)
        check(by_labels(db, 600_000, 1_200_000), data, 600_000, 1_200_000)


def test_head_cut_into_blocks_checkpoint_compaction_and_restart(tmp_path: Path) -> None:
    data = series_data(11)
    opts = DBOptions(fsync=False)
    with DB.open(tmp_path, opts) as db:
        append_hourly(db, data)
        db.wait_for_compaction()
        db.compact()
        assert db.blocks and any(b.meta.max_time - b.meta.min_time > 2 * HOUR for b in db.blocks)
        check(by_labels(db), data, 0, 11 * HOUR)
    with DB.open(tmp_path, opts) as db:  # blocks, checkpoint and WAL tail after a restart
        for b in db.blocks:
            CHUNK_CACHE.drop_block(b._key)
        check(by_labels(db), data, 0, 11 * HOUR)
        check(by_labels(db, HOUR + 7, 5 * HOUR + 3), data, HOUR + 7, 5 * HOUR + 3)
        merged = {s.labels: s for s in db.iter_series()}
        check(merged, data, 0, 11 * HOUR)
        q = db.querier(2 * HOUR, 7 * HOUR)
        batch = q.select_batch([ANY], 2 * HOUR, 7 * HOUR)
        assert batch.st is not None
        check({s.labels: s for s in batch.series()}, data, 2 * HOUR, 7 * HOUR)


def test_block_flags_and_batch_reads_with_partial_chunks(tmp_path: Path) -> None:
    data = series_data(3)
    meta = write_block(
        tmp_path, data, min_time=0, max_time=3 * HOUR, chunk_samples=100, fsync=False
    )
    assert meta is not None
    b = Block(tmp_path / meta.ulid)
    flags = b.chunk_table["flags"]
    plain_rows = slice(int(b._ser_chunks[2]), int(b._ser_chunks[3]))  # plain_total is third
    assert not (flags[plain_rows] & CHUNK_ST).any() and (flags & CHUNK_ST).any()
    for a, z in ((0, 3 * HOUR), (1234, 40_000), (HOUR - 1, 2 * HOUR + 1)):
        got = {s.labels: s for s in b.select([ANY], a, z)}
        check(got, data, a, z)
        batch = b.select_batch([ANY], a, z)
        check({s.labels: s for s in batch.series()}, data, a, z)
    # a block without ST has no ST work to do at all
    meta2 = write_block(tmp_path, [data[2]], min_time=0, max_time=3 * HOUR, fsync=False)
    assert meta2 is not None
    b2 = Block(tmp_path / meta2.ulid)
    assert not b2._has_st and b2.select_batch([ANY], 0, 3 * HOUR).st is None


def test_st_aware_rate_through_the_http_api_over_blocks_and_head(tmp_path: Path) -> None:
    data = series_data(5)
    with DB.open(tmp_path, DBOptions(fsync=False)) as db:
        append_hourly(db, data)
        assert db.blocks
    db = DB.open(tmp_path, DBOptions(fsync=False))
    t = 2 * HOUR + 30_000  # a window reaching into the first block, straddling a restart
    want = Engine().instant_query(db, "increase(delta_total[1m])", t).value

    async def body(c: TestClient[Any, Any]) -> None:
        r = await c.get(
            "/api/v1/query", params={"query": "increase(delta_total[1m])", "time": str(t / 1000)}
        )
        js = await r.json()
        # a delta series: every sample is an increase of 15 (no extrapolation needed)
        assert js["data"]["result"] == [{"metric": {}, "value": [t / 1000, "60"]}]
        r = await c.get(
            "/api/v1/query", params={"query": "resets(cum_total[2h])", "time": str(t / 1000)}
        )
        js = await r.json()
        assert js["data"]["result"][0]["value"][1] == "2"  # restarts at 45 m and 1 h 30
        r = await c.get(
            "/api/v1/query",
            params={"query": "start_timestamp(cum_total)", "time": str(t / 1000)},
        )
        js = await r.json()
        assert js["data"]["result"][0]["value"][1] == "5399.999"  # restarted at 1 h 30 - 1 ms

    try:
        assert [s.v for s in want] == [60.0]  # type: ignore[union-attr]
        run_client(
            lambda: build_app(db, Engine(EngineOpts(enable_experimental_functions=True))), body
        )
    finally:
        db.close()
