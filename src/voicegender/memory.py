"""Handing freed memory back to the operating system, so a long recording's peak stays bounded.

glibc's malloc keeps what a program frees for its next allocations, in one arena per thread. Reading 10 h of audio
through the speaker encoder on two threads (onnxruntime allocates each run's activations anew) left ~50 MB free but
held (3 h of conversation: 365 MB resident before, 317 MB after handing it back), and the clustering that follows
allocates in another arena, on top of it. ``malloc_trim(0)`` returns the free pages of every arena (what Dask's
workers do for their "unmanaged memory"); elsewhere than glibc this does nothing.

That is not enough when the work runs outside the main thread, as ``predict``'s workers and the web server run it:
each thread that allocates gets an arena of its own, up to 8 per core, and what is freed in one is not reused by
another. A 3 h conversation's timeline with speakers peaked at 355 MB in the main thread and at 446 MB in a worker
thread. :func:`limit_heap_arenas` caps their number (glibc's ``MALLOC_ARENA_MAX``): with 2, the worker thread's peak
was 360 MB at the same speed. It is a choice for the whole process, so the library does not make it on its own: the
command line makes it when it starts (``voicegender.cli.main``), before any thread; a program that calls the API on
hours of audio from several threads can call it first, or set ``MALLOC_ARENA_MAX`` in the environment.
"""

from __future__ import annotations

import ctypes
import functools
import os
import sys

HEAP_ARENAS = 2  # glibc malloc arenas the threads share (limit_heap_arenas)
_M_ARENA_MAX = -8  # mallopt's parameter number for the arena limit (glibc's malloc.h)


@functools.cache
def _glibc(name: str, *argtypes):
    """A function of the C library the interpreter runs on when it is glibc's (musl has neither), else None."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        function = getattr(ctypes.CDLL(None), name)
    except (OSError, AttributeError):
        return None
    function.argtypes, function.restype = list(argtypes), ctypes.c_int
    return function


def give_back_free_memory() -> bool:
    """Return the memory freed so far to the operating system (glibc's ``malloc_trim``); whether it could."""
    trim = _glibc("malloc_trim", ctypes.c_size_t)
    if trim is None:
        return False
    trim(0)
    return True


def limit_heap_arenas(arenas: int = HEAP_ARENAS) -> bool:
    """Let the threads share at most ``arenas`` glibc malloc arenas from now on (threads that have allocated
    already keep theirs, so call it first thing); whether the limit was set. A ``MALLOC_ARENA_MAX`` in the
    environment is the user's choice and wins: nothing is changed then."""
    if int(arenas) < 1:
        raise ValueError(f"arenas must be >= 1, got {arenas}")
    if os.environ.get("MALLOC_ARENA_MAX"):
        return False
    mallopt = _glibc("mallopt", ctypes.c_int, ctypes.c_int)
    return mallopt is not None and mallopt(_M_ARENA_MAX, int(arenas)) == 1
