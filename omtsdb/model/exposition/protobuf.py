"""Writing ``io.prometheus.client.MetricFamily`` messages (proto2), length-delimited, as the
protobuf exposition format carries them. Only what federation needs: untyped families whose
metrics have labels, a value and a timestamp.

Field numbers (client_model ``metrics.proto``): MetricFamily name=1, help=2, type=3, metric=4;
Metric label=1, untyped=5, timestamp_ms=6; LabelPair name=1, value=2; Untyped value=1.
Fields are written in field-number order, set optional fields even when empty, as Go's encoder
does, so the bytes match Prometheus's.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence

UNTYPED = 3
_DOUBLE = struct.Struct("<d")


def varint(n: int) -> bytes:
    if n < 0:
        n += 1 << 64
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _len_field(num: int, payload: bytes) -> bytes:
    return varint(num << 3 | 2) + varint(len(payload)) + payload


def _str_field(num: int, s: str) -> bytes:
    return _len_field(num, s.encode("utf-8"))


def untyped_metric(labels: Sequence[tuple[str, str]], value: float, ts_ms: int) -> bytes:
    parts = [_len_field(1, _str_field(1, n) + _str_field(2, v)) for n, v in labels]
    parts.append(_len_field(5, b"\x09" + _DOUBLE.pack(value)))
    parts.append(b"\x30" + varint(ts_ms))
    return b"".join(parts)


def untyped_family_delimited(name: str, metrics: Sequence[bytes]) -> bytes:
    """One MetricFamily of type UNTYPED holding already encoded ``metrics``, with its varint
    length prefix."""
    body = b"".join(
        [_str_field(1, name), b"\x18" + varint(UNTYPED), *(_len_field(4, m) for m in metrics)]
    )
    return varint(len(body)) + body
