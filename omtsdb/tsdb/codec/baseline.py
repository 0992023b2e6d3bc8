"""24 h baselines: a time-of-day profile per series (median per slot).

A baseline is only ever *subtracted in the integer domain* by the decimal value codec, so any
profile is lossless; a better profile just gives smaller residuals. Profiles are therefore
quantised to about four significant digits of their range (``values = mant * 10**exp``), which
makes them cheap to store: delta-coded integer mantissas, packed.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass

import numpy as np

from omtsdb.errors import CorruptionError
from omtsdb.model.samples import F64, I64
from omtsdb.tsdb.codec.ints import deltas, pack_u64, undeltas, unpack_u64, unzigzag, zigzag

DAY_MS = 86_400_000
_SAFE = 2**52


@dataclass(frozen=True, slots=True)
class Baseline:
    """``values[k]`` is the typical value in slot ``k`` of the UTC day (``slot_ms`` wide),
    equal to ``mant[k] * 10**exp`` (computed the same way on encode and decode)."""

    slot_ms: int
    exp: int
    mant: I64

    @property
    def values(self) -> F64:
        out: F64 = self.mant.astype(np.float64) * (10.0**self.exp)
        return out

    def at(self, ts: I64) -> F64:
        slots = (ts % DAY_MS) // self.slot_ms
        out: F64 = self.values[slots]
        return out


def quantise(values: F64, slot_ms: int) -> Baseline | None:
    """The profile ``values`` rounded to ~4 significant digits of its range."""
    span = float(np.ptp(values))
    if not math.isfinite(span) or span == 0.0:
        return None
    exp = math.floor(math.log10(span)) - 3
    mant = np.rint(values / (10.0**exp))
    if not np.all(np.abs(mant) < _SAFE):
        return None
    m = mant.astype(np.int64)
    if np.all(m == m[0]):
        return None
    return Baseline(slot_ms, exp, m)


def learn_baseline(ts: I64, vs: F64, *, slot_ms: int = 300_000) -> Baseline | None:
    """Learn a profile from (ideally) the previous 24 h of a series. None when the data has
    too little coverage or no daily shape worth subtracting. Vectorised: one lexsort."""
    if DAY_MS % slot_ms:
        raise ValueError("slot_ms must divide a day")
    finite = np.isfinite(vs)
    ts, vs = ts[finite], vs[finite]
    nslots = DAY_MS // slot_ms
    if ts.size < nslots // 2:
        return None
    slots = (ts % DAY_MS) // slot_ms
    order = np.lexsort((vs, slots))
    s_sorted, v_sorted = slots[order], vs[order]
    lo = np.searchsorted(s_sorted, np.arange(nslots), "left")
    hi = np.searchsorted(s_sorted, np.arange(nslots), "right")
    have = hi > lo
    if have.sum() < nslots * 0.75:
        return None
    mid_lo = np.where(have, (lo + hi - 1) // 2, 0)
    mid_hi = np.where(have, (lo + hi) // 2, 0)
    med = (v_sorted[mid_lo] + v_sorted[mid_hi]) / 2.0
    idx = np.arange(nslots)
    # fill holes from the nearest known slots (circular)
    med = np.interp(idx, idx[have], med[have], period=nslots)
    return quantise(med.astype(np.float64), slot_ms)


_HDR = struct.Struct("<IHb")


def encode_baseline(b: Baseline) -> bytes:
    """``slot_ms u32 | nslots u16 | exp i8 | packed zigzag(delta1(mant))``."""
    return _HDR.pack(b.slot_ms, b.mant.size, b.exp) + pack_u64(zigzag(deltas(b.mant, 1)))


def decode_baseline(buf: bytes | memoryview) -> Baseline:
    if len(buf) < _HDR.size:
        raise CorruptionError("baseline: short")
    slot_ms, n, exp = _HDR.unpack_from(buf, 0)
    if slot_ms <= 0 or n * slot_ms != DAY_MS:
        raise CorruptionError("baseline: bad header")
    try:
        mant = undeltas(unzigzag(unpack_u64(memoryview(buf)[_HDR.size :], n)), 1)
    except ValueError as e:
        raise CorruptionError(f"baseline: {e}") from None
    return Baseline(slot_ms, exp, mant)
