"""How a training process uses its host: its share of the cores."""
from __future__ import annotations

import os

import torch


def use_cores(processes_per_host: int = 1) -> int:
    """Give torch this process's share of the cores (all of them for one process); returns the thread count."""
    threads = max(1, (os.cpu_count() or 1) // max(1, processes_per_host))
    torch.set_num_threads(threads)
    return threads
