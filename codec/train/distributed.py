"""Data-parallel training under torchrun: gloo on CPU, nccl on CUDA; a no-op alone.

torchrun sets RANK, WORLD_SIZE and LOCAL_RANK; `DistributedContext.from_env()` reads them,
joins the process group and picks the device. Each rank draws its own batches; gradients
are averaged by DistributedDataParallel; RVQ codebook statistics are summed over ranks
(`codec.quantization.all_reduce_sum`), so the EMA sees the whole global batch.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized()


@dataclass
class DistributedContext:
    rank: int = 0
    world_size: int = 1
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @classmethod
    def from_env(cls, device: str = "auto") -> "DistributedContext":
        world = int(os.environ.get("WORLD_SIZE", "1"))
        local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        use_cuda = torch.cuda.is_available() if device == "auto" else device.startswith("cuda")
        chosen = torch.device(f"cuda:{local_rank}") if use_cuda else torch.device("cpu")
        if use_cuda:
            torch.cuda.set_device(chosen)
        if world > 1 and not is_distributed():
            dist.init_process_group(backend="nccl" if use_cuda else "gloo")
        return cls(rank=dist.get_rank() if world > 1 else 0, world_size=world, device=chosen)

    def gather(self, obj: object) -> list[object]:
        if self.world_size == 1:
            return [obj]
        out: list[object] = [None] * self.world_size
        dist.all_gather_object(out, obj)
        return out

    def any(self, flag: bool) -> bool:
        """True on every rank when `flag` is true on any (e.g. one rank ran out of time)."""
        if self.world_size == 1:
            return flag
        t = torch.tensor([1.0 if flag else 0.0], device=self.device)
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return bool(t.item())

    def close(self) -> None:
        if is_distributed():
            dist.destroy_process_group()
