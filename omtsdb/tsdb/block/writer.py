"""Writing a block atomically: temporary directory, fsync, rename, parent fsync.

A crash at any step leaves either no block (a ``*.tmp`` directory that the next open deletes)
or a complete one; ``on_step`` lets tests stop the process between steps.
"""

from __future__ import annotations

import itertools
import os
import shutil
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np

from omtsdb.model.labels import Labels
from omtsdb.model.samples import F64, I64
from omtsdb.tsdb.block.format import (
    CHUNK_DT,
    CHUNK_ST,
    CHUNKS_MAGIC,
    FORMAT_VERSION,
    BlockMeta,
    encode_index,
    new_ulid,
)
from omtsdb.tsdb.codec.baseline import Baseline, encode_baseline
from omtsdb.tsdb.codec.chunk import encode_chunk

DEFAULT_CHUNK_SAMPLES = 4096
BaselineFn = Callable[[Labels], Baseline | None]
# one series of a block: labels, timestamps, values and (optionally) start timestamps
BlockSeries = tuple[Labels, I64, F64] | tuple[Labels, I64, F64, I64 | None]


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def split_points(n: int, per_chunk: int) -> list[int]:
    """Boundaries cutting ``n`` samples into equal chunks of at most ``per_chunk``."""
    k = max(1, -(-n // per_chunk))
    return [n * i // k for i in range(k + 1)]


def encode_series(
    ts: I64,
    vs: F64,
    per_chunk: int,
    baseline: Baseline | None,
    shared: list[bool] | None = None,
    st: I64 | None = None,
) -> tuple[list[bytes], bool]:
    """Chunks of one series, and whether they use ``baseline`` (only when that pays for the
    baseline's own bytes). ``shared[i]``: chunk ``i``'s timestamps are stored elsewhere.
    ``st``: start timestamps, stored in the chunks that have a known one."""
    cuts = split_points(int(ts.size), per_chunk)
    sh = shared or [False] * (len(cuts) - 1)

    def enc(base: Baseline | None) -> list[bytes]:
        return [
            encode_chunk(
                ts[a:b],
                vs[a:b],
                base,
                shared_ts=s,
                thorough=True,
                st=None if st is None else st[a:b],
            )
            for (a, b), s in zip(itertools.pairwise(cuts), sh, strict=True)
        ]

    plain = enc(None)
    if baseline is None:
        return plain, False
    based = enc(baseline)
    cost = sum(map(len, based)) + len(encode_baseline(baseline))
    if cost < sum(map(len, plain)):
        return based, True
    return plain, False


class _Writer:
    def __init__(self, tmp: Path, per_chunk: int, baselines: BaselineFn | None) -> None:
        self.f = open(tmp / "chunks", "wb")  # noqa: SIM115 - closed in finish()
        self.f.write(CHUNKS_MAGIC + FORMAT_VERSION.to_bytes(4, "little"))
        self.off = 8
        self.per_chunk = per_chunk
        self.baselines = baselines
        self.labels: list[Labels] = []
        self.series_chunks = [0]
        self.rows: list[tuple[int, int, int, int, int, int, int]] = []
        self.ts_rows: dict[bytes, int] = {}  # timestamps -> first row that stores them
        self.series_base: list[int] = []
        self.base_blobs: list[bytes] = []
        self.samples = 0
        self.mint = 2**63 - 1
        self.maxt = -(2**63)

    def add(self, lb: Labels, ts: I64, vs: F64, st: I64 | None = None) -> None:
        if ts.size == 0:
            return
        if st is not None and not st.any():
            st = None
        if self.labels and not self.labels[-1].sort_key() < lb.sort_key():
            raise ValueError("block series must be added in label order, without repeats")
        base = self.baselines(lb) if self.baselines is not None else None
        cuts = split_points(int(ts.size), self.per_chunk)
        refs: list[int] = []
        for a, b in itertools.pairwise(cuts):
            key = ts[a:b].tobytes()
            ref = self.ts_rows.get(key, -1) if b - a > 2 else -1
            if ref < 0:
                self.ts_rows[key] = len(self.rows) + len(refs)
            refs.append(ref)
        chunks, used = encode_series(ts, vs, self.per_chunk, base, [r >= 0 for r in refs], st)
        for (a, b), c, ref in zip(itertools.pairwise(cuts), chunks, refs, strict=True):
            flags = CHUNK_ST if st is not None and st[a:b].any() else 0
            self.rows.append((int(ts[a]), int(ts[b - 1]), self.off, len(c), b - a, ref, flags))
            self.f.write(c)
            self.off += len(c)
        if used and base is not None:
            self.series_base.append(len(self.base_blobs))
            self.base_blobs.append(encode_baseline(base))
        else:
            self.series_base.append(-1)
        self.labels.append(lb)
        self.series_chunks.append(len(self.rows))
        self.samples += int(ts.size)
        self.mint = min(self.mint, int(ts[0]))
        self.maxt = max(self.maxt, int(ts[-1]))

    def index(self) -> bytes:
        syms = sorted({s for lb in self.labels for s in lb.flat})
        ref = {s: i for i, s in enumerate(syms)}
        enc = [s.encode() for s in syms]
        sym_off = np.zeros(len(enc) + 1, "<u4")
        np.cumsum([len(e) for e in enc], out=sym_off[1:])
        flat = [ref[s] for lb in self.labels for s in lb.flat]
        ser_off = np.zeros(len(self.labels) + 1, "<u4")
        np.cumsum([len(lb.flat) for lb in self.labels], out=ser_off[1:])
        series_labels = np.asarray(flat, "<u4")
        # postings: sort (key, series) pairs; keys ascending = (name, value) in string order
        sid = np.repeat(np.arange(len(self.labels), dtype=np.uint64), np.diff(ser_off) // 2)
        pairs = series_labels.astype(np.uint64).reshape(-1, 2)
        keys = pairs[:, 0] << np.uint64(32) | pairs[:, 1]
        order = np.lexsort((sid, keys))
        keys, sid = keys[order], sid[order]
        ukeys, starts = np.unique(keys, return_index=True)
        post_off = np.append(starts, keys.size).astype("<u4")
        base_off = np.zeros(len(self.base_blobs) + 1, "<u8")
        np.cumsum([len(b) for b in self.base_blobs], out=base_off[1:])
        return encode_index(
            {
                "symbol_offsets": sym_off.tobytes(),
                "symbols": b"".join(enc),
                "series_offsets": ser_off.tobytes(),
                "series_labels": series_labels.tobytes(),
                "series_chunks": np.asarray(self.series_chunks, "<u4").tobytes(),
                "chunk_table": np.array(self.rows, CHUNK_DT).tobytes(),
                "series_baseline": np.asarray(self.series_base, "<i4").tobytes(),
                "baseline_offsets": base_off.tobytes(),
                "baselines": b"".join(self.base_blobs),
                "postings_keys": ukeys.astype("<u8").tobytes(),
                "postings_offsets": post_off.tobytes(),
                "postings": sid.astype("<u4").tobytes(),
            }
        )


def write_block(
    parent: Path,
    series: Iterable[BlockSeries],
    *,
    min_time: int,
    max_time: int,
    origin: str = "head",
    level: int = 1,
    sources: tuple[str, ...] = (),
    parents: tuple[str, ...] = (),
    baselines: BaselineFn | None = None,
    chunk_samples: int = DEFAULT_CHUNK_SAMPLES,
    fsync: bool = True,
    on_step: Callable[[str], None] | None = None,
) -> BlockMeta | None:
    """Write the series (sorted by labels; samples within [min_time, max_time); start
    timestamps optional) as a block under ``parent``. Returns its meta, or None when there was
    nothing to write."""
    step = on_step or (lambda _s: None)
    ulid = new_ulid()
    tmp = parent / f"{ulid}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    w = _Writer(tmp, chunk_samples, baselines)
    try:
        for item in series:
            w.add(item[0], item[1], item[2], item[3] if len(item) > 3 else None)
        if not w.labels:
            w.f.close()
            shutil.rmtree(tmp, ignore_errors=True)
            return None
        step("chunks")
        if fsync:
            w.f.flush()
            os.fsync(w.f.fileno())
        w.f.close()
        index = w.index()
        _write_file(tmp / "index", index, fsync)
        step("index")
        meta = BlockMeta(
            ulid=ulid,
            min_time=min_time,
            max_time=max_time,
            num_series=len(w.labels),
            num_samples=w.samples,
            num_chunks=len(w.rows),
            level=level,
            sources=sources or (ulid,),
            parents=parents,
            origin=origin,
            files={"chunks": w.off, "index": len(index)},
        )
        _write_file(tmp / "meta.json", meta.to_json(), fsync)
        step("meta")
        if fsync:
            fsync_dir(tmp)
        step("fsync")
        os.rename(tmp, parent / ulid)
        step("rename")
        if fsync:
            fsync_dir(parent)
        step("parent_fsync")
    except BaseException:
        if not w.f.closed:
            w.f.close()
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return meta


def _write_file(path: Path, data: bytes, fsync: bool) -> None:
    with open(path, "wb") as f:
        f.write(data)
        if fsync:
            f.flush()
            os.fsync(f.fileno())
