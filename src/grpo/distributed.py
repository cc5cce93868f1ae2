"""Several training processes (``torchrun``): who this process is, and the few collectives the loop needs.

One process, no ``WORLD_SIZE`` in the environment: :class:`Distributed` is the identity (``gather`` returns its
input, ``barrier`` does nothing), so the loop reads the same either way. Under ``torchrun`` the process group is
``torch.distributed``'s: gloo on CPU, nccl on CUDA. Gradients are synchronised by DDP, never by hand.
"""
from __future__ import annotations

import datetime
import os
from contextlib import contextmanager
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class Distributed:
    """This process's place among ``world_size`` training processes (rank 0 writes files)."""

    rank: int = 0
    world_size: int = 1
    local_world_size: int = 1
    enabled: bool = False
    """True when this process belongs to a process group (also with world size 1 under torchrun): the collectives
    and DDP are used. False: one process, and every method below is the identity."""

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def shard(self, n: int, what: str = "num_prompts_per_step") -> slice:
        """This rank's contiguous share of ``n`` items (whole groups); ``n`` must divide by the world size."""
        if n % self.world_size:
            raise ValueError(f"{what} ({n}) must divide by the number of processes ({self.world_size})")
        per_rank = n // self.world_size
        return slice(self.rank * per_rank, (self.rank + 1) * per_rank)

    def share(self, n: int) -> slice:
        """This rank's contiguous share of ``n`` items that need not divide evenly (the first ranks get one more)."""
        base, extra = divmod(n, self.world_size)
        start = self.rank * base + min(self.rank, extra)
        return slice(start, start + base + (self.rank < extra))

    def gather(self, tensor: torch.Tensor) -> torch.Tensor:
        """Every rank's ``[n, ...]`` tensor (same shape on all) concatenated in rank order: ``[world * n, ...]``."""
        if not self.enabled:
            return tensor
        parts = [torch.empty_like(tensor) for _ in range(self.world_size)]
        dist.all_gather(parts, tensor.contiguous())
        return torch.cat(parts)

    def sum(self, tensor: torch.Tensor) -> torch.Tensor:
        """Element-wise sum over the ranks (a new tensor)."""
        if not self.enabled:
            return tensor
        total = tensor.clone()
        dist.all_reduce(total)
        return total

    def any(self, *flags: bool) -> list[bool]:
        """For each flag, whether it is set on any rank: decisions every process must take together."""
        if not self.enabled:
            return [bool(f) for f in flags]
        return [bool(v) for v in self.sum(torch.tensor([int(bool(f)) for f in flags])).tolist()]

    def sum_values(self, values: dict[str, float]) -> dict[str, float]:
        """Each value summed over the ranks (each rank holds its share of a statistic)."""
        if not self.enabled or not values:
            return dict(values)
        keys = sorted(values)
        return dict(zip(keys, self.sum(torch.tensor([values[k] for k in keys], dtype=torch.float64)).tolist()))

    def barrier(self) -> None:
        if self.enabled:
            dist.barrier()

    @contextmanager
    def main_first(self):
        """Rank 0 runs the block first (it builds caches and converted models); the others wait, then read them."""
        if not self.is_main:
            self.barrier()
        yield
        if self.is_main:
            self.barrier()


def from_environment(device: torch.device | str = "cpu") -> Distributed:
    """Join the process group that ``torchrun`` describes in the environment; one process without it."""
    if "WORLD_SIZE" not in os.environ:
        return Distributed()
    if not dist.is_initialized():
        # The loop's own small collectives (counts, flags, rewards) use CPU tensors: gloo carries them, nccl the
        # gradients. The timeout covers rank 0 preparing alone (converting the model, embedding the catalog,
        # distilling the warm start) while the others wait at a barrier.
        backend = "cpu:gloo,cuda:nccl" if torch.device(device).type == "cuda" else "gloo"
        minutes = float(os.environ.get("LESER_DIST_TIMEOUT_MIN", 360))
        dist.init_process_group(backend, timeout=datetime.timedelta(minutes=minutes))
    if torch.device(device).type == "cuda":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
    return Distributed(dist.get_rank(), dist.get_world_size(),
                       int(os.environ.get("LOCAL_WORLD_SIZE", dist.get_world_size())), enabled=True)


def shutdown() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
