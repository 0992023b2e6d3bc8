"""24 h baselines: a time-of-day profile per series (median per slot)."""

from __future__ import annotations

import struct
from dataclasses import dataclass

import numpy as np

from omtsdb.errors import CorruptionError
from omtsdb.model.samples import F64, I64

DAY_MS = 86_400_000


@dataclass(frozen=True, slots=True)
class Baseline:
    """``values[k]`` is the typical value in slot ``k`` of the UTC day (``slot_ms`` wide)."""

    slot_ms: int
    values: F64

    def at(self, ts: I64) -> F64:
        slots = (ts % DAY_MS) // self.slot_ms
        out: F64 = self.values[slots]
        return out


def learn_baseline(ts: I64, vs: F64, *, slot_ms: int = 300_000) -> Baseline | None:
    """Learn a profile from (ideally) the previous 24 h of a series. None when the data has
    too little coverage or no daily shape worth subtracting."""
    if DAY_MS % slot_ms:
        raise ValueError("slot_ms must divide a day")
    finite = np.isfinite(vs)
    ts, vs = ts[finite], vs[finite]
    nslots = DAY_MS // slot_ms
    if ts.size < nslots // 2:
        return None
    slots = (ts % DAY_MS) // slot_ms
    order = np.argsort(slots, kind="stable")
    s_sorted, v_sorted = slots[order], vs[order]
    bounds = np.searchsorted(s_sorted, np.arange(nslots + 1))
    med = np.full(nslots, np.nan)
    for k in range(nslots):
        a, b = bounds[k], bounds[k + 1]
        if b > a:
            med[k] = np.median(v_sorted[a:b])
    have = ~np.isnan(med)
    if have.sum() < nslots * 0.75:
        return None
    # fill holes from the nearest known slot (circular)
    idx = np.arange(nslots)
    known = idx[have]
    med = np.interp(idx, known, med[have], period=nslots)
    if float(np.ptp(med)) == 0.0:
        return None
    return Baseline(slot_ms, med.astype(np.float64))


_HDR = struct.Struct("<IH")


def encode_baseline(b: Baseline) -> bytes:
    return _HDR.pack(b.slot_ms, b.values.size) + b.values.astype("<f8").tobytes()


def decode_baseline(buf: bytes) -> Baseline:
    if len(buf) < _HDR.size:
        raise CorruptionError("baseline: short")
    slot_ms, n = _HDR.unpack_from(buf, 0)
    if slot_ms <= 0 or n * slot_ms != DAY_MS or len(buf) != _HDR.size + 8 * n:
        raise CorruptionError("baseline: bad header")
    return Baseline(slot_ms, np.frombuffer(buf, "<f8", n, _HDR.size).astype(np.float64))
