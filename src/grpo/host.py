"""How a training process uses its host: its share of the cores, and memory that is kept for reuse."""
from __future__ import annotations

import ctypes
import ctypes.util
import os

import torch

# glibc mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD, _M_MMAP_MAX = -1, -4


def use_cores(processes_per_host: int = 1) -> int:
    """Give torch this process's share of the cores (all of them for one process); returns the thread count."""
    threads = max(1, (os.cpu_count() or 1) // max(1, processes_per_host))
    torch.set_num_threads(threads)
    return threads


def keep_freed_memory() -> bool:
    """Make glibc keep freed memory in the heap instead of returning it to the kernel.

    A GRPO step allocates and frees the same few hundred MB of activations and logits every pass. By default glibc
    serves each block above 32 MB with a fresh ``mmap`` and unmaps it on free, so every pass pays the kernel to
    fault in and zero those pages again: on 2 CPU cores that is a third of the bf16 update (5.7 s instead of
    8.3 s once the heap has grown). The same effect as ``MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=<large>``.
    Returns False where the C library is not glibc (nothing changes there)."""
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError, TypeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(mallopt(_M_MMAP_MAX, 0)) and bool(mallopt(_M_TRIM_THRESHOLD, 2**31 - 1))
