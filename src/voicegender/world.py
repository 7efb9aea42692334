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
    """The rank and world size torchrun (or any launcher using its variables) gave this process.

    Raises ValueError naming the variable when one is not a whole number, or when WORLD_SIZE is above 1 without
    RANK: taking rank 0 then would have every process of a badly launched job do the same share of the work.
    """
    env = os.environ if env is None else env

    def number(name: str, default: int) -> int:
        text = env.get(name)
        if text is None:
            return default
        try:
            return int(text)
        except ValueError:
            raise ValueError(f"{name}={text!r} is not a whole number; launchers such as torchrun set it (unset it "
                             "to run alone)") from None

    size = number("WORLD_SIZE", 1)
    if size > 1 and "RANK" not in env:
        raise ValueError(f"WORLD_SIZE={size} is set but RANK is not: each process needs its own RANK "
                         f"(0 to {size - 1}), as torchrun sets it; unset WORLD_SIZE to run alone")
    rank = number("RANK", 0)
    local_size = number("LOCAL_WORLD_SIZE", size)
    local_rank = number("LOCAL_RANK", rank)
    if size < 1 or not 0 <= rank < size:
        raise ValueError(f"RANK={rank} is not in 0..WORLD_SIZE-1 (WORLD_SIZE={size})")
    return World(rank, size, local_rank, max(1, local_size))
