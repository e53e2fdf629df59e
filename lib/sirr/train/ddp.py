"""torchrun / DistributedDataParallel: this process's place in a (possibly single-process) run.

:func:`setup_distributed` joins the process group when ``RANK`` / ``WORLD_SIZE`` say so (NCCL on CUDA, gloo on
the CPU) and is a no-op otherwise; :class:`Distributed` gathers per-rank state for the checkpoint.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist

__all__ = ["Distributed", "setup_distributed"]


@dataclass
class Distributed:
    """This process's place in a (possibly single-process) run."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: str = "cpu"
    initialized_here: bool = False

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def gather(self, obj: Any) -> list[Any]:
        """Every rank's ``obj`` (a list indexed by rank) on every rank; ``[obj]`` without DDP."""
        if not self.enabled:
            return [obj]
        out: list[Any] = [None] * self.world_size
        dist.all_gather_object(out, obj)
        return out

    def barrier(self) -> None:
        if self.enabled:
            dist.barrier()

    def close(self) -> None:
        """Destroy the process group if this run created it."""
        if self.initialized_here:
            if dist.is_initialized():
                dist.destroy_process_group()
            self.initialized_here = False


def setup_distributed(device: str) -> Distributed:
    """Join the torchrun process group when ``RANK``/``WORLD_SIZE`` say so (NCCL on CUDA, gloo on CPU).

    Under torchrun each process trains on ``cuda:LOCAL_RANK`` (CUDA) or the CPU; without torchrun (or
    ``WORLD_SIZE=1``) this is a no-op returning rank 0 of 1.
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1 or "RANK" not in os.environ:
        return Distributed(device=device)
    rank = int(os.environ["RANK"])
    local_rank = int(os.environ.get("LOCAL_RANK", rank))
    is_cuda = torch.device(device).type == "cuda"
    if is_cuda:
        device = f"cuda:{local_rank}"
        torch.cuda.set_device(local_rank)
    here = False
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if is_cuda else "gloo")
        here = True
    return Distributed(rank=dist.get_rank(), world_size=dist.get_world_size(), local_rank=local_rank,
                       device=device, initialized_here=here)
