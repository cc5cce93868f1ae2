"""What every result file records so that it can be traced and rerun: the commit, the date and the config."""
from __future__ import annotations

import datetime
import functools
import subprocess
from pathlib import Path


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


def provenance(config: dict | None = None) -> dict:
    """``{"commit", "date", "config"}`` for a result file; ``config`` is the run's resolved config (left out when
    the file records it under another name)."""
    now = datetime.datetime.now(datetime.timezone.utc)
    stamp = {"commit": code_commit(), "date": now.isoformat(timespec="seconds")}
    return stamp if config is None else {**stamp, "config": config}
