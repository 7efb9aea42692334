"""torch.distributed plumbing for training under ``torchrun`` (DDP), and the rank/world-size a job runs as.

``torchrun --nproc-per-node N [--nnodes M --rdzv-endpoint HOST:PORT] -m voicegender train ...`` starts N
processes per node and tells each its place through the environment (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``,
``LOCAL_WORLD_SIZE``, ``MASTER_ADDR``/``MASTER_PORT``). :func:`process_group` turns that into an initialised
default process group with the gloo backend: training here runs on the CPU, and gloo is torch's CPU backend (NCCL
only moves CUDA tensors; it becomes the choice once the training loop places its tensors on a GPU). Outside
torchrun every helper here is a no-op for a world of one, so the training code has one path.

The rank and world size themselves (:func:`voicegender.world.world_from_env`) are torch-free and live in
:mod:`voicegender.world`: sharded prediction takes its shard from the same variables.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

from ..world import World, world_from_env

log = logging.getLogger(__name__)

BACKEND = "gloo"  # torch's CPU backend (see the module docstring)
TIMEOUT = timedelta(minutes=30)  # how long a rank waits for the others in one collective


def is_initialized() -> bool:
    import torch.distributed as dist

    return dist.is_available() and dist.is_initialized()


def current() -> World:
    """This process's place in the initialised process group (0 of 1 without one)."""
    if not is_initialized():
        return World()
    import torch.distributed as dist

    env = world_from_env()
    return World(dist.get_rank(), dist.get_world_size(), env.local_rank, env.local_size)


@contextlib.contextmanager
def process_group() -> Iterator[World]:
    """Initialise the default process group when torchrun launched this process (WORLD_SIZE > 1), and destroy it
    on leaving. Re-entrant: inside an initialised group it only reports the world."""
    env = world_from_env()
    if env.size == 1 or is_initialized():
        yield current()
        return
    import torch.distributed as dist

    if "MASTER_ADDR" not in os.environ:
        raise RuntimeError("WORLD_SIZE > 1 but MASTER_ADDR is not set: start distributed runs with torchrun")
    dist.init_process_group(backend=BACKEND, timeout=TIMEOUT)
    world = current()
    log.info("rank %d of %d (%s)", world.rank, world.size, BACKEND)
    try:
        yield world
        # every rank done before the group goes: a rank tearing gloo down while the other still has a collective in
        # flight aborted it now and then ("terminate called without an active exception", SIGABRT: 1 of 5 runs here)
        dist.barrier()
    finally:
        dist.destroy_process_group()


def barrier() -> None:
    if is_initialized():
        import torch.distributed as dist

        dist.barrier()


def broadcast_object(obj: Any, src: int = 0) -> Any:
    """``obj`` of rank ``src`` on every rank (picklable objects: tensors, dicts, None)."""
    if not is_initialized():
        return obj
    import torch.distributed as dist

    box = [obj]
    dist.broadcast_object_list(box, src=src)
    return box[0]


def all_gather_object(obj: Any) -> list[Any]:
    """Every rank's ``obj``, in rank order (``[obj]`` without a group)."""
    if not is_initialized():
        return [obj]
    import torch.distributed as dist

    out: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out


def all_reduce_sum(tensor):
    """Sum ``tensor`` over the ranks, in place (returned for convenience)."""
    if is_initialized():
        import torch.distributed as dist

        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def average_buffers(module) -> None:
    """Average the floating-point buffers (BatchNorm running statistics) over the ranks, in place.

    DDP keeps parameters equal on every rank but lets each rank's BatchNorm layers update their running
    statistics from its own part of the batch; averaging them before validation and checkpointing gives every
    rank the same model (and a better estimate than rank 0's alone).
    """
    if not is_initialized():
        return
    import torch.distributed as dist

    world = dist.get_world_size()
    for buf in module.buffers():
        if buf.is_floating_point():
            dist.all_reduce(buf.data, op=dist.ReduceOp.SUM)
            buf.data.div_(world)


def wrap_ddp(module):
    """``module`` in DistributedDataParallel inside a process group (gradients averaged over the ranks during
    ``backward``), else ``module`` itself."""
    if not is_initialized():
        return module
    from torch.nn.parallel import DistributedDataParallel

    return DistributedDataParallel(module)
