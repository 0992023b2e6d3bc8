"""Transport helpers shared by the remote endpoints: bounded body reading, snappy block
decoding that checks the claimed length first, content negotiation, varint framing."""

from __future__ import annotations

import cramjam
from aiohttp import web

from omtsdb.errors import BadDataError, OmtsdbError


class UnsupportedMediaError(OmtsdbError):
    """An unsupported Content-Type, proto message or Content-Encoding (415)."""

    error_type = "bad_data"
    status = 415


async def read_body(req: web.Request, limit: int) -> bytes:
    """The whole request body, or BadDataError as soon as it exceeds ``limit`` bytes."""
    if req.content_length is not None and req.content_length > limit:
        raise BadDataError(
            f"request body of {req.content_length} bytes exceeds the limit of {limit}"
        )
    parts: list[bytes] = []
    size = 0
    while True:
        chunk = await req.content.readany()
        if not chunk:
            break
        size += len(chunk)
        if size > limit:
            raise BadDataError(f"request body exceeds the limit of {limit} bytes")
        parts.append(chunk)
    return b"".join(parts)


def uvarint(data: bytes, pos: int = 0) -> tuple[int, int]:
    """(value, next position) of the unsigned varint at ``pos``; ValueError when truncated."""
    result = shift = 0
    n = len(data)
    while pos < n and shift < 70:
        b = data[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if b < 0x80:
            return result, pos
        shift += 7
    raise ValueError("truncated or overlong varint")


def put_uvarint(x: int) -> bytes:
    out = bytearray()
    while x >= 0x80:
        out.append((x & 0x7F) | 0x80)
        x >>= 7
    out.append(x)
    return bytes(out)


def snappy_decode(data: bytes, max_len: int) -> bytes:
    """Snappy block format; the length header is checked against ``max_len`` before any
    allocation, so a lying header costs nothing."""
    try:
        n, _ = uvarint(data, 0)
    except ValueError:
        raise BadDataError("snappy: corrupt input: bad length header") from None
    if n > max_len:
        raise BadDataError(f"snappy: decoded length {n} exceeds the limit of {max_len} bytes")
    try:
        out = bytes(cramjam.snappy.decompress_raw(data))
    except Exception as e:
        raise BadDataError(f"snappy: corrupt input: {e}") from None
    if len(out) != n:
        raise BadDataError("snappy: corrupt input: length mismatch")
    return out


def snappy_encode(data: bytes) -> bytes:
    return bytes(cramjam.snappy.compress_raw(data))


def media_type(value: str) -> tuple[str, dict[str, str]]:
    """``type/subtype`` (lower case) and parameters of a Content-Type header."""
    parts = value.split(";")
    params: dict[str, str] = {}
    for p in parts[1:]:
        k, _, v = p.partition("=")
        params[k.strip().lower()] = v.strip().strip('"')
    return parts[0].strip().lower(), params


RW1 = "prometheus.WriteRequest"
RW2 = "io.prometheus.write.v2.Request"


def write_message_type(content_type: str, content_encoding: str) -> str:
    """Which remote-write message a request carries, as Prometheus's receiver decides it:
    no Content-Type means 1.0; other media types, protos or encodings are 415."""
    enc = content_encoding.strip().lower()
    if enc not in ("", "snappy"):
        raise UnsupportedMediaError(f"{content_encoding} encoding (compression) is not accepted")
    if not content_type.strip():
        return RW1
    mt, params = media_type(content_type)
    if mt != "application/x-protobuf":
        raise UnsupportedMediaError(f"{content_type} media type is not supported")
    proto = params.get("proto", RW1)
    if proto not in (RW1, RW2):
        raise UnsupportedMediaError(f"unknown remote write proto message {proto!r}")
    return proto
