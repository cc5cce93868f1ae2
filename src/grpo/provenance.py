"""What every result file records so that it can be traced and rerun: the commit, the date, the machine and the
config."""
from __future__ import annotations

import datetime
import functools
import os
import subprocess
from pathlib import Path

import torch

from policy.precision import native_bf16


def git_commit() -> str:
    """HEAD of the checkout this code runs from, with ``-dirty`` when tracked files differ from it."""
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], capture_output=True, text=True, cwd=Path(__file__).parent,
                              check=True).stdout.strip()

    try:
        return git("rev-parse", "HEAD") + ("-dirty" if git("status", "--porcelain", "--untracked-files=no") else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


@functools.cache
def code_commit() -> str:
    """:func:`git_commit` when this module was first imported: the code a process runs. A run that lasts hours
    records it, not wherever the checkout has moved since."""
    return git_commit()


code_commit()  # pinned at import, before a long run's checkout can move on


@functools.cache
def machine() -> dict:
    """The CPU (model, cores, whether bf16 is native), the GPU if any, and torch: timings and bf16 numbers hold
    for one kind of machine, so every result file says which one it came from."""
    model = next((line.split(":", 1)[1].strip() for line in _cpuinfo() if line.startswith("model name")), "unknown")
    flags = next((line.split(":", 1)[1].split() for line in _cpuinfo() if line.startswith("flags")), [])
    record = {"cpu": model, "cpu_cores": len(os.sched_getaffinity(0)), "cpu_bf16_native": native_bf16("cpu")[0],
              "cpu_flags": [f for f in ("avx2", "avx512f", "avx512_bf16", "amx_bf16") if f in flags],
              "torch": torch.__version__}
    if torch.cuda.is_available():
        record["gpu"] = torch.cuda.get_device_name(0)
    return record


def _cpuinfo() -> list[str]:
    try:
        return Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:  # not Linux
        return []


def provenance(config: dict | None = None) -> dict:
    """``{"commit", "date", "machine", "config"}`` for a result file; ``config`` is the run's resolved config
    (left out when the file records it under another name)."""
    now = datetime.datetime.now(datetime.timezone.utc)
    stamp = {"commit": code_commit(), "date": now.isoformat(timespec="seconds"), "machine": machine()}
    return stamp if config is None else {**stamp, "config": config}
