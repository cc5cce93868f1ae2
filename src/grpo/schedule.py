"""The learning-rate schedule and seeding: the two pure functions a run's reproducibility rests on."""
from __future__ import annotations

import math
import random

import numpy as np
import torch


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
