"""Remote write 1.0 and 2.0: decode a request into one columnar appender batch and commit it.

Remote write 1.0 fast path. The request is split into raw ``TimeSeries`` byte strings by the
protobuf runtime (C). A series that carries one sample is laid out as
``<label fields><0x12 len sample>``, and its sample is one of two fixed shapes (value and a
6-byte varint timestamp, or a zero value omitted). The 18 trailing bytes of every series are
checked for those shapes at once with numpy; the bytes before the sample are then looked up in a
cache of label sections already decoded and validated, which gives the head series id. Only
series that miss the cache (new series, several samples, exemplars, histograms, unusual
encodings) go through the full protobuf decoder. A cache hit is a correct parse: a protobuf
message parses deterministically from its start, the cached prefix is known to consist of whole
label fields, and the tail is one whole sample field.

Remote write 2.0 samples carry a start timestamp (``Sample.start_timestamp``, 0 = unset; from
senders older than the specification's move of it, ``TimeSeries.created_timestamp`` for all the
series' samples): it is stored as the sample's start timestamp.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from itertools import repeat
from operator import getitem
from typing import Any

import numpy as np
from google.protobuf.message import DecodeError

from omtsdb.errors import AppendError, BadDataError, OutOfBoundsError
from omtsdb.model.labels import METRIC_NAME, Labels
from omtsdb.model.samples import F64, I64
from omtsdb.remote.protoload import load
from omtsdb.remote.wire import uvarint
from omtsdb.storage.metadata import METRIC_TYPES, MetadataStore
from omtsdb.tsdb.db import DB
from omtsdb.tsdb.head import Head

MAX_AHEAD_MS = 10 * 60 * 1000  # Prometheus refuses samples further in the future
_PB = load("prometheus.proto")
_V2 = load("write_v2.proto")
_CUT18 = slice(0, -18)
_CUT9 = slice(0, -9)
_W6 = np.array([1 << (7 * k) for k in range(6)], np.int64)


@dataclass(slots=True)
class WriteOutcome:
    """What a write did: counts for the RW 2.0 headers, and the error for a 400."""

    samples: int = 0
    histograms: int = 0
    exemplars: int = 0
    errors: list[str] = field(default_factory=list)

    def fail(self, msg: str) -> None:
        if len(self.errors) < 10:
            self.errors.append(msg)


def _labels_from_pairs(pairs: list[tuple[str, str]]) -> Labels:
    """Validated labels of one series (remote write rules): names unique and non-empty,
    ``__name__`` present, valid UTF-8 (the protobuf runtime checks that)."""
    names = [n for n, _ in pairs]
    if len(set(names)) != len(names):
        raise BadDataError(f"duplicate label names in series {pairs}")
    if any(not n for n in names):
        raise BadDataError(f"empty label name in series {pairs}")
    lb = Labels(pairs)
    if not lb.get(METRIC_NAME):
        raise BadDataError(f"series {lb} has no metric name")
    return lb


def _label_prefix_end(raw: bytes) -> int:
    """End of the leading run of label fields (field 1, length-delimited) of a TimeSeries."""
    pos = 0
    n = len(raw)
    while pos < n and raw[pos] == 0x0A:
        ln, p = uvarint(raw, pos + 1)
        pos = p + ln
    return min(pos, n)


class SeriesCache:
    """Raw label-section bytes (or a label tuple for 2.0) -> head series id. Head ids are never
    reused, and series leave the head only through truncation: the cache is cleared whenever
    the head has dropped series since it was filled."""

    def __init__(self, head: Head, max_entries: int = 1_000_000) -> None:
        self.head = head
        self.entries: dict[Any, int] = {}
        self.max_entries = max_entries
        self._removed = head.removed_series_total

    def check(self) -> dict[Any, int]:
        if self.head.removed_series_total != self._removed:
            self.entries.clear()
            self._removed = self.head.removed_series_total
        return self.entries

    def put(self, key: Any, sid: int) -> None:
        if len(self.entries) >= self.max_entries:
            self.entries.clear()
        self.entries[key] = sid


class RemoteWriter:
    def __init__(self, db: DB, metadata: MetadataStore) -> None:
        self.db = db
        self.metadata = metadata
        self.v1_cache = SeriesCache(db.head)
        self.v2_cache = SeriesCache(db.head)

    # -- remote write 1.0 -----------------------------------------------------------------
    def write_v1(self, body: bytes, now_ms: int | None = None) -> WriteOutcome:
        try:
            req = _PB["WriteRequestRaw"].FromString(body)
        except DecodeError as e:
            raise BadDataError(f"decoding remote write request: {e}") from None
        out = WriteOutcome()
        for md in req.metadata:
            t = METRIC_TYPES[md.type] if 0 <= md.type < len(METRIC_TYPES) else "unknown"
            self.metadata.add(md.metric_family_name, t, md.help, md.unit)
        tss: list[bytes] = list(req.timeseries)
        if not tss:
            return out
        app = self.db.appender()
        n = len(tss)
        sids = np.full(n, -1, np.int64)
        ts_fast = vs_fast = None
        if min(map(len, tss)) >= 18:
            tails = np.frombuffer(b"".join([s[-18:] for s in tss]), np.uint8).reshape(n, 18)
            varint_ok = (tails[:, 12:17] >= 0x80).all(axis=1) & (tails[:, 17] < 0x80)
            fa = (tails[:, 0] == 0x12) & (tails[:, 1] == 16) & (tails[:, 2] == 0x09)
            fa &= (tails[:, 11] == 0x10) & varint_ok
            fb = (tails[:, 9] == 0x12) & (tails[:, 10] == 7) & (tails[:, 11] == 0x10)
            fb &= varint_ok & ~fa
            cuts = [_CUT18 if a else _CUT9 for a in fa.tolist()]
            get = self.v1_cache.check().get
            sids = np.array(list(map(get, map(getitem, tss, cuts), repeat(-1))), np.int64)
            sids[~(fa | fb)] = -1
            vs_fast = np.where(fa, tails[:, 3:11].copy().view("<f8")[:, 0], 0.0)
            ts_fast = ((tails[:, 12:18].astype(np.int64) & 0x7F) * _W6).sum(axis=1)
        hit = sids >= 0
        parts_r: list[I64] = []
        parts_t: list[I64] = []
        parts_v: list[F64] = []
        if ts_fast is not None and vs_fast is not None and hit.any():
            parts_r.append(sids[hit])
            parts_t.append(ts_fast[hit])
            parts_v.append(vs_fast[hit])
        TimeSeries = _PB["TimeSeries"]
        for i in np.flatnonzero(~hit).tolist():
            raw = tss[i]
            try:
                ts = TimeSeries.FromString(raw)
            except DecodeError as e:
                raise BadDataError(f"decoding remote write request: {e}") from None
            if ts.histograms:
                out.fail(f"{len(ts.histograms)} native histogram samples dropped: not supported")
            try:
                lb = _labels_from_pairs([(x.name, x.value) for x in ts.labels])
                sid = app.ref(lb)
            except BadDataError as e:
                out.fail(str(e))
                continue
            end = _label_prefix_end(raw)
            if _count_label_fields(raw, end) == len(ts.labels):
                self.v1_cache.put(raw[:end], sid)
            k = len(ts.samples)
            if k:
                parts_r.append(np.full(k, sid, np.int64))
                parts_t.append(np.fromiter((s.timestamp for s in ts.samples), np.int64, k))
                parts_v.append(np.fromiter((s.value for s in ts.samples), np.float64, k))
        return self._commit(app, parts_r, parts_t, parts_v, out, now_ms, rollback_on_reject=True)

    def _commit(
        self,
        app: Any,
        parts_r: list[I64],
        parts_t: list[I64],
        parts_v: list[F64],
        out: WriteOutcome,
        now_ms: int | None,
        *,
        rollback_on_reject: bool,
        parts_s: list[I64 | None] | None = None,
    ) -> WriteOutcome:
        if not parts_r:
            return out
        refs = np.concatenate(parts_r) if len(parts_r) > 1 else parts_r[0]
        ts = np.concatenate(parts_t) if len(parts_t) > 1 else parts_t[0]
        vs = np.concatenate(parts_v) if len(parts_v) > 1 else parts_v[0]
        st = None
        if parts_s is not None and any(p is not None for p in parts_s):
            st = np.concatenate(
                [
                    p if p is not None else np.zeros_like(t)
                    for p, t in zip(parts_s, parts_t, strict=True)
                ]
            )
        limit = (now_ms if now_ms is not None else int(time.time() * 1000)) + MAX_AHEAD_MS
        ahead = ts > limit
        if ahead.any():
            err = OutOfBoundsError(
                f"out of bounds: {int(ahead.sum())} samples too far in the future"
            )
            if rollback_on_reject:
                app.rollback()
                raise err
            out.fail(str(err))
            keep = ~ahead
            refs, ts, vs = refs[keep], ts[keep], vs[keep]
            st = None if st is None else st[keep]
        report = app.append_refs(refs, ts, vs, st)
        if report.rejected and rollback_on_reject:
            app.rollback()
            raise report.first_error or AppendError("samples rejected")
        app.commit()
        if report.rejected:
            out.fail(f"{report.rejected} samples rejected: {report.first_error}")
        out.samples += report.appended
        return out

    # -- remote write 2.0 -----------------------------------------------------------------
    def write_v2(self, body: bytes, now_ms: int | None = None) -> WriteOutcome:
        try:
            req = _V2["Request"].FromString(body)
        except DecodeError as e:
            raise BadDataError(f"decoding remote write 2.0 request: {e}") from None
        out = WriteOutcome()
        symbols = list(req.symbols)
        if symbols and symbols[0] != "":
            raise BadDataError("symbols table must start with the empty string")
        nsym = len(symbols)
        app = self.db.appender()
        cache = self.v2_cache.check()
        parts_r: list[I64] = []
        parts_t: list[I64] = []
        parts_v: list[F64] = []
        parts_s: list[I64 | None] = []
        for ts in req.timeseries:
            refs = tuple(ts.labels_refs)
            if len(refs) % 2 or (refs and max(refs) >= nsym):
                out.fail(f"invalid labels_refs {list(refs)} for {nsym} symbols")
                continue
            key = tuple(map(symbols.__getitem__, refs))
            sid = cache.get(key, -1)
            if sid < 0:
                pairs = [(symbols[refs[j]], symbols[refs[j + 1]]) for j in range(0, len(refs), 2)]
                try:
                    lb0 = _labels_from_pairs(pairs)
                    sid = app.ref(lb0)
                except BadDataError as e:
                    out.fail(str(e))
                    continue
                self.v2_cache.put(key, sid)
            if ts.histograms:
                out.fail(f"{len(ts.histograms)} native histogram samples dropped: not supported")
            md = ts.metadata
            if md.type or md.help_ref or md.unit_ref:
                if max(md.help_ref, md.unit_ref) >= nsym:
                    out.fail("metadata refers past the symbols table")
                else:
                    t = METRIC_TYPES[md.type] if 0 <= md.type < len(METRIC_TYPES) else "unknown"
                    self.metadata.add(
                        _family(_name_of(key), t), t, symbols[md.help_ref], symbols[md.unit_ref]
                    )
            k = len(ts.samples)
            if k:
                parts_r.append(np.full(k, sid, np.int64))
                parts_t.append(np.fromiter((s.timestamp for s in ts.samples), np.int64, k))
                parts_v.append(np.fromiter((s.value for s in ts.samples), np.float64, k))
                parts_s.append(_starts(ts, k))
        return self._commit(
            app, parts_r, parts_t, parts_v, out, now_ms, rollback_on_reject=False, parts_s=parts_s
        )


def _starts(ts: Any, k: int) -> I64 | None:
    """Start timestamps of a 2.0 series' samples, or None when none is set."""
    st = np.fromiter((s.start_timestamp for s in ts.samples), np.int64, k)
    legacy = int(ts.created_timestamp)
    if legacy:
        np.copyto(st, legacy, where=st == 0)
    return st if st.any() else None


def _name_of(flat: tuple[str, ...]) -> str:
    for j in range(0, len(flat) - 1, 2):
        if flat[j] == METRIC_NAME:
            return flat[j + 1]
    return ""


def _count_label_fields(raw: bytes, end: int) -> int:
    pos = count = 0
    while pos < end:
        ln, p = uvarint(raw, pos + 1)
        pos = p + ln
        count += 1
    return count


def _family(name: str, type_: str) -> str:
    if type_ in ("histogram", "gaugehistogram", "summary"):
        for suffix in ("_bucket", "_sum", "_count"):
            if name.endswith(suffix):
                return name[: -len(suffix)]
    return name
