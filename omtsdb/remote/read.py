"""Remote read: ``ReadRequest`` queries answered as SAMPLES (one snappy ``ReadResponse``) or
STREAMED_XOR_CHUNKS (a stream of ``ChunkedReadResponse`` frames: uvarint length, big-endian
CRC-32C, message; one series per frame, split when a frame would pass ``max_bytes_in_frame``)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from google.protobuf.message import DecodeError

from omtsdb.errors import BadDataError, OmtsdbError
from omtsdb.model.matchers import Matcher, MatchType
from omtsdb.remote.protoload import load
from omtsdb.remote.wire import put_uvarint
from omtsdb.remote.xor import MAX_SAMPLES_PER_CHUNK, crc32c, encode_chunk
from omtsdb.storage.interface import Queryable, SeriesData

_PB = load("prometheus.proto")
SAMPLES = 0
STREAMED_XOR_CHUNKS = 1
XOR = 1
_TYPES = (MatchType.EQ, MatchType.NEQ, MatchType.RE, MatchType.NRE)
STREAM_CONTENT_TYPE = "application/x-streamed-protobuf; proto=prometheus.ChunkedReadResponse"


@dataclass(frozen=True, slots=True)
class ReadQuery:
    start_ms: int
    end_ms: int
    matchers: tuple[Matcher, ...]


def decode_read_request(body: bytes) -> tuple[list[ReadQuery], int]:
    """The queries and the negotiated response type (first accepted one we support;
    SAMPLES when the client lists none)."""
    try:
        req = _PB["ReadRequest"].FromString(body)
    except DecodeError as e:
        raise BadDataError(f"decoding remote read request: {e}") from None
    queries = []
    for q in req.queries:
        ms = []
        for m in q.matchers:
            if not 0 <= m.type < len(_TYPES):
                raise BadDataError(f"invalid matcher type {m.type}")
            try:
                ms.append(Matcher(_TYPES[m.type], m.name, m.value))
            except OmtsdbError as e:
                raise BadDataError(str(e)) from None
        queries.append(ReadQuery(q.start_timestamp_ms, q.end_timestamp_ms, tuple(ms)))
    accepted = list(req.accepted_response_types)
    if not accepted:
        return queries, SAMPLES
    for t in accepted:
        if t in (SAMPLES, STREAMED_XOR_CHUNKS):
            return queries, int(t)
    raise BadDataError(f"server does not support any of the requested response types: {accepted}")


def select(db: Queryable, q: ReadQuery) -> list[SeriesData]:
    with db.querier(q.start_ms, q.end_ms) as querier:
        return querier.select(list(q.matchers), q.start_ms, q.end_ms)


def _add_labels(msg: Any, s: SeriesData) -> None:
    for n, v in s.labels:
        msg.labels.add(name=n, value=v)


def samples_response(results: list[list[SeriesData]], sample_limit: int) -> bytes:
    """Serialized ``ReadResponse`` (uncompressed)."""
    resp = _PB["ReadResponse"]()
    total = 0
    for series in results:
        qr = resp.results.add()
        for s in series:
            total += len(s.ts)
            if sample_limit and total > sample_limit:
                raise BadDataError(f"exceeded sample limit ({sample_limit})")
            ts = qr.timeseries.add()
            _add_labels(ts, s)
            Sample = _PB["Sample"]
            ts.samples.extend(
                Sample(value=v, timestamp=t)
                for t, v in zip(s.ts.tolist(), s.vs.tolist(), strict=True)
            )
    return bytes(resp.SerializeToString())


def frame(msg: bytes) -> bytes:
    return put_uvarint(len(msg)) + crc32c(msg).to_bytes(4, "big") + msg


def chunked_frames(
    query_index: int, series: list[SeriesData], max_bytes_in_frame: int
) -> Iterator[bytes]:
    """Frames of one query's series, XOR chunks of at most 120 samples."""
    Resp = _PB["ChunkedReadResponse"]
    for s in series:
        ts, vs = s.ts.tolist(), s.vs.tolist()
        resp = Resp(query_index=query_index)
        cs = resp.chunked_series.add()
        _add_labels(cs, s)
        size = 0
        for a in range(0, len(ts), MAX_SAMPLES_PER_CHUNK):
            b = min(a + MAX_SAMPLES_PER_CHUNK, len(ts))
            data = encode_chunk(ts[a:b], vs[a:b])
            cs.chunks.add(min_time_ms=ts[a], max_time_ms=ts[b - 1], type=XOR, data=data)
            size += len(data) + 32
            if size >= max_bytes_in_frame and b < len(ts):
                yield frame(resp.SerializeToString())
                resp = Resp(query_index=query_index)
                cs = resp.chunked_series.add()
                _add_labels(cs, s)
                size = 0
        if cs.chunks:
            yield frame(resp.SerializeToString())
