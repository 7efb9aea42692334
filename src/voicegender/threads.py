"""How many CPU threads numpy's BLAS and torch may use while a model runs: batch prediction spends the cores on
files side by side, not on threads inside one small operation."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator


def blas_single_thread() -> contextlib.AbstractContextManager:
    """Run numpy's BLAS on one thread inside the block.

    Features multiply small matrices (a 64x257 mel basis by a 257x100 spectrogram); OpenBLAS's threads only add
    hand-off cost there, and on a busy 2-core machine they made ``log_mel`` of a 1 s clip 7x slower (15.6 ms
    vs 2.1 ms), and their idle spinning cost `segment` a quarter of its speed (a 20 min conversation: 22.0 s and
    39 CPU-s without the limit, 17.4 s and 25.7 CPU-s with it). torch's own threads (the model forward) are not
    affected. The limit is process-wide while the block runs, so it covers the worker threads too.
    """
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=1, user_api="blas")


@contextlib.contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """Set torch's intra-op threads to ``n`` inside the block (0: unchanged), then restore them.

    Batch prediction runs the model on one thread and spends the other cores on decoding and speech detection
    of the next batch. Short clips make small tensors: with 2 threads on a busy 2-core machine each op waits
    for the other thread's time slice, and a SmallCNN forward took 338 ms of CPU per 1 s clip instead of 6 ms
    (GE2E: 69 ms vs 23 ms). Nothing is done while torch is not imported: a model that does not use it (onnx,
    numpy) is not made to load it (240 MB of resident memory).
    """
    if n <= 0 or sys.modules.get("torch") is None:  # None: blocked, as tests do to simulate its absence
        yield
        return
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)
