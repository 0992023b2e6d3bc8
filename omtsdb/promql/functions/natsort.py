"""Natural string order as ``sort_by_label`` uses it (Prometheus uses facette/natsort): runs of
digits compare as numbers (longer run, after skipping leading zeros, is larger; equal lengths
compare as text), everything else character by character."""

from __future__ import annotations

from functools import cmp_to_key


def _isdigit(c: str) -> bool:
    return "0" <= c <= "9"


def _digit_run(s: str, pos: int) -> tuple[int, int]:
    """Start and length of the number at ``s[pos]`` (a digit). Leading zeros are skipped while
    another character follows, whatever that character is, and digits after it extend the run
    (the reference's quirks, kept for identical order)."""
    n = len(s)
    length = 1
    cur = s[pos]
    while pos + length < n:
        x = s[pos + length]
        if cur == "0":
            pos += 1
            cur = x
            continue
        if not _isdigit(x):
            break
        length += 1
    return pos, length


def natural_less(a: str, b: str) -> bool:
    pa = pb = 0
    la, lb = len(a), len(b)
    while True:
        if pa >= la:
            return pb < lb
        if pb >= lb:
            return False
        ca, cb = a[pa], b[pb]
        if _isdigit(ca) and _isdigit(cb):
            pa, na = _digit_run(a, pa)
            pb, nb = _digit_run(b, pb)
            if na != nb:
                return nb > na
            ra, rb = a[pa : pa + na], b[pb : pb + nb]
            if ra != rb:
                return ra < rb
            pa += na
            pb += nb
            continue
        if ca != cb:
            return ca < cb
        pa += 1
        pb += 1


def natural_cmp(a: str, b: str) -> int:
    if a == b:
        return 0
    return -1 if natural_less(a, b) else 1


natural_key = cmp_to_key(natural_cmp)
