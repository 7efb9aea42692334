"""Where this process sits in a job: its rank and the world size that torchrun, SLURM wrappers or any launcher
using torchrun's variables (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``LOCAL_WORLD_SIZE``) gave it. Torch-free:
sharded prediction takes its shard from it, distributed training its place in the process group."""

from __future__ import annotations

import os
from dataclasses import dataclass


@dataclass(frozen=True)
class World:
    """Where this process sits in a job: ``rank`` of ``size`` (0 of 1 when it runs alone)."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0
    local_size: int = 1

    @property
    def is_main(self) -> bool:
        """Rank 0: the one process that writes checkpoints, logs and reports."""
        return self.rank == 0


def world_from_env(env: dict[str, str] | None = None) -> World:
    """The rank and world size torchrun (or any launcher using its variables) gave this process."""
    env = os.environ if env is None else env
    try:
        size = int(env.get("WORLD_SIZE", "1"))
        rank = int(env.get("RANK", "0"))
        local_size = int(env.get("LOCAL_WORLD_SIZE", str(size)))
        local_rank = int(env.get("LOCAL_RANK", str(rank)))
    except ValueError as e:
        raise ValueError(f"RANK/WORLD_SIZE must be integers ({e})") from e
    if size < 1 or not 0 <= rank < size:
        raise ValueError(f"RANK={rank} is not in 0..WORLD_SIZE-1 (WORLD_SIZE={size})")
    return World(rank, size, local_rank, max(1, local_size))
