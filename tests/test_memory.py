"""Handing freed memory back to the operating system (voicegender.memory)."""

import sys

import pytest

from voicegender.memory import give_back_free_memory


def _resident_mb() -> float:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS")) / 1024


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc_trim: Linux only")
def test_memory_freed_below_a_live_block_goes_back_to_the_system():
    if not give_back_free_memory():
        pytest.skip("not glibc: nothing to give back with")
    blocks = [bytearray(1000) for _ in range(60_000)]  # ~60 MB of heap, not mmap: malloc keeps it when freed
    last = blocks[-1]  # alive at the heap's top, so freeing the others cannot shrink the heap by itself
    del blocks
    held = _resident_mb()
    assert give_back_free_memory()
    assert held - _resident_mb() > 30
    assert len(last) == 1000
