"""Filesystem locations shared by the retrieval package (cache root, named data sets)."""
from __future__ import annotations

import os
from pathlib import Path

__all__ = ["cache_dir", "data_root"]


def cache_dir() -> Path:
    """Root of LESER's on-disk cache: ``$LESER_CACHE`` or ``~/.cache/leser``.

    The directory is not created here; writers create the sub-folders they need.
    """
    env = os.environ.get("LESER_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "leser"


def data_root() -> Path:
    """Folder holding the named data sets (``home_depot/``, ``wands/``).

    ``$LESER_DATA_ROOT`` when set, else ``../shared/data`` relative to the working directory (the layout of
    the development checkout).
    """
    env = os.environ.get("LESER_DATA_ROOT")
    return Path(env).expanduser() if env else Path.cwd().parent / "shared" / "data"
