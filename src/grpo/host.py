"""How a training process uses its host: its share of the cores (and, for measurements, its allocator)."""
from __future__ import annotations

import ctypes
import ctypes.util
import os
import platform

import torch


def use_cores(processes_per_host: int = 1) -> int:
    """Give torch this process's share of the cores (all of them for one process); returns the thread count."""
    threads = max(1, (os.cpu_count() or 1) // max(1, processes_per_host))
    torch.set_num_threads(threads)
    return threads


def heap_only_malloc() -> bool:
    """Have glibc's malloc serve every allocation from its heap and never hand freed memory back; True if it did.

    For measurements only; no trainer calls it. glibc maps each large tensor fresh and unmaps it on free, and on
    this project's 2-core VM a fresh page costs microseconds: an update took up to 1.1 M page faults, ~1,500 with
    this setting. It shortened TRL's step far more than ours over a few steps, but in a training run the fragmented
    heap made ``malloc`` itself slow (21% of perf samples by step 85, steps 12 s -> 21 s;
    experiments/runs/2026-11-28_bench_grpo_malloc). Process-wide; does nothing off glibc.
    """
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    m_trim_threshold, m_mmap_max = -1, -4  # malloc.h
    return bool(libc.mallopt(m_mmap_max, 0)) and bool(libc.mallopt(m_trim_threshold, 2**31 - 1))
