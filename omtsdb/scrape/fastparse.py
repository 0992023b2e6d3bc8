"""Re-reading a steady target without parsing lines in Python.

Most targets answer every scrape with the same lines in the same order; only the values
change. After a full parse of a text-format (0.0.4) page without timestamps, the loop keeps its
*skeleton*: the page with every sample's value token cut out. The next page is cut the same way
with a handful of numpy operations (line ends, the last space of each sample line); when its
skeleton is byte-for-byte the previous one, the series, their order and the metadata are known,
and the value tokens are converted by numpy's C parser in one call. Anything else (a new or
missing series, a timestamp, an unusual token, OpenMetrics with its exemplars) takes the full
parser, which then provides the next skeleton.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from omtsdb.model.exposition import NO_TS, Exposition
from omtsdb.model.exposition.floats import NORMAL_NAN

U8 = npt.NDArray[np.uint8]
# bytes a value token may hold: digits, sign, point, exponent, and the letters of NaN / Inf
_VALUE_BYTES = np.zeros(256, np.bool_)
for _c in b" 0123456789+-.eEnNaAiIfFtTyY":
    _VALUE_BYTES[_c] = True


@dataclass(slots=True)
class Skeleton:
    bytes_: U8  # the page without its value tokens
    template: Exposition  # series, series_idx, metadata of that page (values replaced)


def _cut(body: bytes) -> tuple[U8, npt.NDArray[np.intp], int] | None:
    """``(page bytes, positions of the value tokens' bytes, sample line count)``; each token's
    positions start with the space before it. None when a line does not look like
    ``series value``."""
    b = np.frombuffer(body, np.uint8)
    n = b.size
    if n == 0:
        return None
    nl = np.flatnonzero(b == 10)
    ends = nl if (nl.size and nl[-1] == n - 1) else np.append(nl, n)
    starts = np.concatenate(([0], ends[:-1] + 1))
    nonempty = ends > starts
    first = np.where(nonempty, b[np.minimum(starts, n - 1)], 35)  # empty lines count as '#'
    sample = first != 35  # not '#'
    s_starts, s_ends = starts[sample], ends[sample]
    if s_starts.size == 0:
        return None
    spaces = np.flatnonzero(b == 32)
    k = np.searchsorted(spaces, s_ends) - 1
    if k.min() < 0:
        return None
    last = spaces[k]
    if np.any(last <= s_starts) or np.any(last + 1 >= s_ends):
        return None  # no space inside the line, or nothing after it
    lengths = s_ends - last  # the space and the token
    offsets = np.cumsum(lengths) - lengths
    pos = np.arange(int(lengths.sum())) + np.repeat(last - offsets, lengths)
    return b, pos, int(s_starts.size)


def skeleton_of(body: bytes, e: Exposition) -> Skeleton | None:
    """The skeleton of a page the full parser read as ``e`` (None when the fast path cannot
    serve it: timestamps, or a line count that does not match)."""
    if e.format != "text" or len(e) == 0 or bool(np.any(e.ts != NO_TS)):
        return None
    cut = _cut(body)
    if cut is None or cut[2] != len(e):
        return None
    b, pos, _ = cut
    return Skeleton(np.delete(b, pos), e)


def reparse(body: bytes, sk: Skeleton) -> Exposition | None:
    """``body`` read with the series of ``sk`` when its skeleton is the same, else None."""
    cut = _cut(body)
    if cut is None:
        return None
    b, pos, nsamples = cut
    t = sk.template
    if nsamples != len(t) or b.size - pos.size != sk.bytes_.size:
        return None
    if not np.array_equal(np.delete(b, pos), sk.bytes_):
        return None
    tokens = b[pos]
    if not _VALUE_BYTES[tokens].all():
        return None
    buf = tokens.tobytes()
    try:
        vs = np.fromstring(buf, dtype=np.float64, sep=" ")  # C strtod, like float()
    except ValueError:
        return None
    if vs.size != nsamples:
        return None
    nan = np.isnan(vs)
    if nan.any():  # Prometheus stores Go's NaN bits for a NaN token
        vs[nan] = NORMAL_NAN
    return Exposition(t.series, t.series_idx, t.ts, vs, t.metadata, t.format)
