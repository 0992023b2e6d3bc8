"""Sample conventions shared by every layer: dtypes and the staleness marker.

Timestamps are int64 milliseconds since the Unix epoch; values are float64. The staleness marker
is one specific NaN (bit pattern ``0x7ff0000000000002``, Prometheus's ``value.StaleNaN``); it must
survive every encode/decode bit-exactly, so compare bits, never values.
"""

from __future__ import annotations

import struct
from typing import Any

import numpy as np
import numpy.typing as npt

I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]

STALE_NAN_BITS = 0x7FF0000000000002
STALE_NAN: float = struct.unpack("<d", struct.pack("<Q", STALE_NAN_BITS))[0]


def is_stale_nan(v: float) -> bool:
    """True when ``v`` is exactly the staleness marker (by bits)."""
    return struct.pack("<d", v) == _STALE_BYTES


_STALE_BYTES = struct.pack("<d", STALE_NAN)


def stale_mask(values: npt.NDArray[Any]) -> npt.NDArray[np.bool_]:
    """Vectorised :func:`is_stale_nan` over a float64 array."""
    arr = np.ascontiguousarray(values, dtype=np.float64)
    mask: npt.NDArray[np.bool_] = arr.view(np.uint64) == np.uint64(STALE_NAN_BITS)
    return mask
