"""The optimiser, the learning-rate schedule and seeding: what a run's reproducibility rests on."""
from __future__ import annotations

import math
import random

import numpy as np
import torch


OPTIMIZERS = ("adamw_torch", "adamw_torch_fused")
"""AdamW as TRL's ``optim`` names it: torch's default implementation (a loop over tensors on CPU, ``foreach``
on CUDA), or one fused kernel over every tensor."""


def adamw(params, optim: str, lr: float, betas: tuple[float, float], weight_decay: float) -> torch.optim.AdamW:
    """AdamW over ``params`` (``optim`` from :data:`OPTIMIZERS`). Both keep the same state (``step``,
    ``exp_avg``, ``exp_avg_sq`` per tensor); :func:`grpo.checkpoint.apply_checkpoint` keeps the configured
    kind when it loads a checkpoint written by the other."""
    if optim not in OPTIMIZERS:
        raise ValueError(f"optim must be one of {OPTIMIZERS}, got {optim!r}")
    return torch.optim.AdamW(params, lr=lr, betas=betas, weight_decay=weight_decay,
                             fused=True if optim == "adamw_torch_fused" else None)


def warmup_cosine(step: int, warmup: int, total: int, min_ratio: float) -> float:
    """LR multiplier: linear warm-up to 1, then cosine decay to ``min_ratio`` at ``total``."""
    if step < warmup:
        return (step + 1) / (warmup + 1)
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


def seed_everything(seed: int, device: torch.device | str = "cpu") -> torch.Generator:
    """Seed every global RNG; return the sampling generator, on the policy's device so draws stay there."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    return torch.Generator(device=device).manual_seed(seed)


def group_generators(seed: int, step: int, round_: int, first_group: int, n: int,
                     device: torch.device | str = "cpu") -> list[torch.Generator]:
    """Sampling generators for ``n`` groups, the i-th seeded from (seed, step, refill round, ``first_group + i``).

    A group's samples then depend on where it sits in the step's global batch, not on which process samples it,
    what else shares its decode batch, or whether the run was resumed."""
    return [torch.Generator(device=device).manual_seed(
        int(np.random.SeedSequence([seed, step, round_, first_group + i]).generate_state(1, dtype=np.uint64)[0]))
        for i in range(n)]
