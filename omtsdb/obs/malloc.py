"""Allocator settings for the long-running server process.

Query evaluation allocates and frees many short-lived numpy arrays of a few hundred KiB to a
few MiB. With glibc's defaults each such array is a fresh ``mmap`` (or fresh heap pages after
the heap was trimmed), so every query pays a page fault per 4 KiB it touches; on the query
benchmark that was a third of the evaluation time. Keeping freed memory mapped (a high trim
threshold and some top padding, arrays up to 32 MiB from the heap) lets later queries reuse
pages already faulted in, at the price of the process keeping up to ``trim`` bytes of freed
heap mapped.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging

log = logging.getLogger("omtsdb")

_M_TRIM_THRESHOLD, _M_TOP_PAD, _M_MMAP_THRESHOLD = -1, -2, -3


def tune_malloc(
    trim: int = 512 * 2**20, top_pad: int = 64 * 2**20, mmap_threshold: int = 32 * 2**20
) -> bool:
    """Apply the settings when the C library is glibc; True when all were accepted."""
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (musl has no mallopt tunables we need)
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    ok = all(
        mallopt(param, value)
        for param, value in (
            (_M_MMAP_THRESHOLD, mmap_threshold),
            (_M_TRIM_THRESHOLD, trim),
            (_M_TOP_PAD, top_pad),
        )
    )
    if not ok:
        log.debug("mallopt refused some allocator settings")
    return ok
