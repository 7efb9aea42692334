"""Handing freed memory back to the operating system (voicegender.memory)."""

import sys

import pytest
from conftest import resident_mb

from voicegender.memory import give_back_free_memory


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc_trim: Linux only")
def test_memory_freed_below_a_live_block_goes_back_to_the_system():
    if not give_back_free_memory():
        pytest.skip("not glibc: nothing to give back with")
    blocks = [bytearray(1000) for _ in range(60_000)]  # ~60 MB of heap, not mmap: malloc keeps it when freed
    last = blocks[-1]  # alive at the heap's top, so freeing the others cannot shrink the heap by itself
    del blocks
    held = resident_mb()
    assert give_back_free_memory()
    assert held - resident_mb() > 30
    assert len(last) == 1000


_COUNT_ARENAS = """
import ctypes, sys, threading
from voicegender.memory import limit_heap_arenas
limited = limit_heap_arenas(int(sys.argv[1])) if sys.argv[1] != "none" else None
def work():
    keep = [bytearray(4000) for _ in range(2000)]  # malloc'd, not Python's small-object pool
    barrier.wait()  # all threads alive at once, so none can take over another's arena
barrier = threading.Barrier(4)
threads = [threading.Thread(target=work) for _ in range(4)]
[t.start() for t in threads]
[t.join() for t in threads]
print(limited, flush=True)
ctypes.CDLL(None).malloc_stats()  # one "Arena n:" block per arena, on stderr
"""


def _fresh_process(script: str, argument: str, unset: tuple[str, ...], **environment: str):
    """``python -c script argument`` with the variables ``unset`` taken out of this environment and
    ``environment`` added (the malloc settings are read when a process starts)."""
    import os
    import subprocess

    env = {k: v for k, v in os.environ.items() if k not in unset} | environment
    return subprocess.run([sys.executable, "-c", script, argument], capture_output=True, text=True, check=True,
                          env=env)


def _arenas(limit: str, arena_max_env: str | None = None) -> tuple[str, int]:
    """(what limit_heap_arenas said, arenas glibc made) in a fresh process whose 4 threads allocate at once."""
    given = {} if arena_max_env is None else {"MALLOC_ARENA_MAX": arena_max_env}
    run = _fresh_process(_COUNT_ARENAS, limit, ("MALLOC_ARENA_MAX",), **given)
    return run.stdout.strip(), run.stderr.count("Arena ")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's arenas: Linux only")
def test_threads_share_the_arenas_they_are_limited_to():
    if not give_back_free_memory():
        pytest.skip("not glibc")
    assert _arenas("none")[1] >= 3  # the main thread's and the workers' own
    assert _arenas("1") == ("True", 1)
    said, arenas = _arenas("1", arena_max_env="3")
    assert said == "False" and 1 < arenas <= 3  # the environment's limit, not ours


def test_an_arena_limit_below_one_is_refused():
    from voicegender.memory import limit_heap_arenas

    with pytest.raises(ValueError, match="arenas must be >= 1"):
        limit_heap_arenas(0)


_FREE_BIG_BLOCKS = """
import sys
from voicegender.memory import map_large_blocks
said = map_large_blocks() if sys.argv[1] == "mapped" else None
def resident_mb():
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS")) / 1024
first = bytearray(300_000)  # mapped by glibc's first threshold (128 kB) ...
del first  # ... and freed: by default the threshold now rises past 300 kB
blocks, alive = [], []
for _ in range(200):  # ~60 MB of 300 kB blocks, each followed by a small block that stays
    blocks.append(bytearray(300_000))
    alive.append(bytearray(2_000))
held = resident_mb()
del blocks
print(said, held - resident_mb())
"""


def _given_back_mb(mode: str) -> tuple[str, float]:
    """(what map_large_blocks said, MB given back by freeing 60 MB of 300 kB blocks) in a fresh process."""
    run = _fresh_process(_FREE_BIG_BLOCKS, mode, ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_"))
    said, mb = run.stdout.split()
    return said, float(mb)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mmap threshold: Linux only")
def test_big_blocks_go_back_to_the_system_when_freed_once_mapped():
    if not give_back_free_memory():
        pytest.skip("not glibc")
    said, mb = _given_back_mb("mapped")
    assert said == "True" and mb > 50
    said, mb = _given_back_mb("default")  # glibc's rising threshold: the blocks came from the heap, and stay
    assert said == "None" and mb < 10


def test_a_threshold_below_one_is_refused():
    from voicegender.memory import map_large_blocks

    with pytest.raises(ValueError, match="threshold must be >= 1"):
        map_large_blocks(0)
