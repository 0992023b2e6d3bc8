"""Start timestamps (ST) in the counter functions, as Prometheus 3.14 (use-start-timestamps).

Every function here is elementwise over the flat sample arrays of many series: entry ``j``
compares sample ``j`` with sample ``j - 1`` (entry 0 is always 0). A window counts the entries
``j`` in ``(lo, hi)``, so pairs across series boundaries are never seen. ``st == 0`` means the
start is unknown and never changes anything.
"""

from __future__ import annotations

import numpy as np

from omtsdb.model.samples import I64


def st_resets(ts: I64, st: I64) -> I64:
    """1 where sample ``j``'s start timestamp says the counter restarted after sample ``j-1``
    (Prometheus's ``isStartTimestampReset``): its ST is known, before its own timestamp (an ST
    equal to it is OTel's "unknown start", a later one is invalid) and after the previous
    sample; or equal to the previous sample's timestamp while that sample had a valid known
    start of its own (a delta series; a cumulative series of unknown start has ST == T, or 0)."""
    out = np.zeros(ts.size, np.int64)
    if ts.size < 2:
        return out
    cur, t = st[1:], ts[1:]
    prev_st, prev_t = st[:-1], ts[:-1]
    valid = (cur != 0) & (cur < t)
    after = cur > prev_t
    delta = (cur == prev_t) & (prev_st != 0) & (prev_st < prev_t)
    out[1:] = valid & (after | delta)
    return out


def st_overlaps(ts: I64, st: I64) -> I64:
    """1 where sample ``j``'s known start lies before the previous sample's timestamp without
    being the previous sample's own start (Prometheus's ``checkStartTimeOverlap``): the two
    samples claim overlapping intervals."""
    out = np.zeros(ts.size, np.int64)
    if ts.size < 2:
        return out
    cur = st[1:]
    out[1:] = (cur != 0) & (cur < ts[:-1]) & (cur != st[:-1])
    return out
