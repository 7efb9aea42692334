"""Handing freed memory back to the operating system, so a long recording's peak stays bounded.

glibc's malloc keeps what a program frees for its next allocations, in one arena per thread. Reading 10 h of audio
through the speaker encoder on two threads (onnxruntime allocates each run's activations anew) left ~50 MB free but
held (3 h of conversation: 365 MB resident before, 317 MB after handing it back), and the clustering that follows
allocates in another arena, on top of it. ``malloc_trim(0)`` returns the free pages of every arena (what Dask's
workers do for their "unmanaged memory"); elsewhere than glibc this does nothing.
"""

from __future__ import annotations

import ctypes
import functools
import sys


@functools.cache
def _malloc_trim():
    if not sys.platform.startswith("linux"):
        return None
    try:
        trim = ctypes.CDLL(None).malloc_trim  # the C library the interpreter runs on: glibc's (musl has none)
    except (OSError, AttributeError):
        return None
    trim.argtypes, trim.restype = [ctypes.c_size_t], ctypes.c_int
    return trim


def give_back_free_memory() -> bool:
    """Return the memory freed so far to the operating system (glibc's ``malloc_trim``); whether it could."""
    trim = _malloc_trim()
    if trim is None:
        return False
    trim(0)
    return True
