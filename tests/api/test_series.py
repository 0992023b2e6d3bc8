"""``/api/v1/series`` and the label endpoints read labels only: no sample is decoded (they
decoded every sample of every matching series before ``SelectHints.func == "series"``), and
the answers stay the same."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from aiohttp.test_utils import TestClient

from omtsdb.compose import build_app
from omtsdb.model.labels import Labels
from omtsdb.tsdb import chunks
from omtsdb.tsdb.block import reader
from omtsdb.tsdb.db import DB, DBOptions
from tests.helpers import run_client

T0 = 1_700_000_000_000


def test_metadata_lookups_decode_no_sample(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    db = DB.open(tmp_path, DBOptions(fsync=False))
    series = [Labels({"__name__": f"m{i % 3}", "i": str(i)}) for i in range(20)]
    n = 2000  # 15 s apart: 8 h, cut into blocks with the rest in the head
    ts = T0 + 15_000 * np.arange(n, dtype=np.int64)
    app = db.appender()
    app.append_columns(series, np.repeat(np.arange(20), n), np.tile(ts, 20), np.ones(20 * n))
    app.commit()
    db.wait_for_compaction()
    assert db.blocks
    decoded: list[int] = []
    batch, head = reader.decode_batch, chunks.decode_st
    monkeypatch.setattr(reader, "decode_batch", lambda jobs: decoded.append(1) or batch(jobs))
    monkeypatch.setattr(chunks, "decode_st", lambda c: decoded.append(1) or head(c))

    async def body(c: TestClient[Any, Any]) -> None:
        r = await c.get("/api/v1/series", params={"match[]": "{__name__=~'m.*'}"})
        got = (await r.json())["data"]
        assert len(got) == 20 and got[0] == {"__name__": "m0", "i": "0"}
        r = await c.get("/api/v1/series", params={"match[]": "m1", "limit": "3"})
        js = await r.json()
        assert [s["i"] for s in js["data"]] == ["1", "10", "13"]
        assert js["warnings"] == ["results truncated due to limit"]
        last = {"start": str((T0 + 15_000 * (n - 10)) / 1000), "end": str(T0 / 1000 + 10**6)}
        r = await c.get("/api/v1/series", params={"match[]": "m2", **last})
        assert len((await r.json())["data"]) == 6
        r = await c.get("/api/v1/labels", params={"match[]": "m2"})
        assert (await r.json())["data"] == ["__name__", "i"]
        r = await c.get("/api/v1/label/i/values", params={"match[]": "m0"})
        assert len((await r.json())["data"]) == 7

    try:
        run_client(lambda: build_app(db), body)
    finally:
        db.close()
    assert decoded == []
