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

Within the arenas, glibc serves a block from the heap unless it is larger than the mmap threshold, and that
threshold rises with every mmapped block freed (up to 32 MB): soon the speaker encoder's activations (0.2-2 MB a
run, on two threads) and the reading's buffers come from the shared arena and leave holes there, and how much
depends on how the threads interleave. ``predict``'s 10 h peak moved from run to run (375, 420, 515 MB) and a 3 h one
between 331 and 372 MB. :func:`map_large_blocks` fixes the threshold at 256 kB, so larger blocks are mapped and go
back to the system when freed: 3 h ``predict`` 289-290 MB in four runs. Fixing it also fixes the heap's automatic
trimming at glibc's 128 kB, which made 1,024 short clips 14 % slower (freeing at the top of the heap gave memory
back and took it again); the trim threshold is set at 64 MB instead (:func:`give_back_free_memory` trims when it is
worth it). Cost: the mapped blocks' first touch, ~5 % on a long recording with speakers (3 h ``predict`` 202 ->
211 s), nothing measurable on short clips. The command line sets it when it starts, beside the arena limit.
"""

from __future__ import annotations

import ctypes
import functools
import os
import sys

HEAP_ARENAS = 2  # glibc malloc arenas the threads share (limit_heap_arenas)
MMAP_THRESHOLD = 256 * 1024  # bytes: blocks larger than this are mapped apart and unmapped when freed
TRIM_THRESHOLD = 64 * 1024 * 1024  # bytes of free heap top glibc keeps before giving it back by itself
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD, _M_ARENA_MAX = -1, -3, -8  # mallopt's parameter numbers (glibc's malloc.h)


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
    return _mallopt(((_M_ARENA_MAX, int(arenas), "MALLOC_ARENA_MAX"),))


def map_large_blocks(threshold: int = MMAP_THRESHOLD, trim_threshold: int = TRIM_THRESHOLD) -> bool:
    """Serve blocks larger than ``threshold`` bytes by mmap from now on, whatever was freed before (glibc's
    ``M_MMAP_THRESHOLD``, which otherwise rises as big blocks are freed), and let the heap keep up to
    ``trim_threshold`` free bytes at its top (``M_TRIM_THRESHOLD``); whether both were set. A
    ``MALLOC_MMAP_THRESHOLD_`` or ``MALLOC_TRIM_THRESHOLD_`` in the environment is the user's choice and wins:
    nothing is changed then. Process-wide, like :func:`limit_heap_arenas`."""
    if int(threshold) < 1 or int(trim_threshold) < 0:
        raise ValueError(f"threshold must be >= 1 and trim_threshold >= 0, got {threshold} and {trim_threshold}")
    return _mallopt(((_M_TRIM_THRESHOLD, int(trim_threshold), "MALLOC_TRIM_THRESHOLD_"),
                     (_M_MMAP_THRESHOLD, int(threshold), "MALLOC_MMAP_THRESHOLD_")))


def _mallopt(settings: tuple[tuple[int, int, str], ...]) -> bool:
    """Set each (mallopt parameter, value, the environment variable that sets it too) in order; whether all were
    set. Nothing is set when any of the variables is in the environment (the user's choice wins) or this is not
    glibc."""
    if any(os.environ.get(variable) for _, _, variable in settings):
        return False
    mallopt = _glibc("mallopt", ctypes.c_int, ctypes.c_int)
    return mallopt is not None and all(mallopt(parameter, value) == 1 for parameter, value, _ in settings)
