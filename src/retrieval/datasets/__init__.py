"""Product-search relevance data sets: one in-memory form (:class:`Dataset`) for every format.

One module per format, each with its gain mapping (``qrels`` values; ``relevant_gain`` is the threshold for
recall and MRR):

============  ==============  ==========================================  ===============
format        module          gain                                        relevant_gain
============  ==============  ==========================================  ===============
Home Depot    ``home_depot``  mean rating − 1  (0 .. 2)                   1.0 (rating ≥ 2)
WANDS         ``wands``       Exact = 2, Partial = 1, Irrelevant = 0      2.0 (Exact)
ESCI          ``esci``        E = 3, S = 2, C = 1, I = 0                  3.0 (Exact)
generic       ``generic``     the ``gain`` column as given                ``dataset.json`` or 1.0
============  ==============  ==========================================  ===============

``core`` holds the types, query identity and splits; ``files`` the strict readers every format shares;
``builder`` the rules for duplicates and unknown ids. :func:`load_dataset` detects a folder's format.
"""
from __future__ import annotations

import os
from pathlib import Path

from ..paths import data_root
from .core import SPLITS, Dataset, DatasetError, normalise_query, query_id_for, split_of
from .esci import ESCI_EXAMPLES, load_esci
from .files import AUTO
from .generic import load_generic
from .home_depot import load_home_depot
from .wands import WANDS_COLUMNS, load_wands

__all__ = [
    "Dataset",
    "DatasetError",
    "SPLITS",
    "detect_format",
    "load_dataset",
    "normalise_query",
    "query_id_for",
    "split_of",
]

_NAMES = ("wands", "home_depot")


def detect_format(folder: Path) -> str:
    """Format of the files in ``folder``: "home_depot", "esci", "generic" or "wands"."""
    if (folder / "train.csv").exists():
        return "home_depot"
    if (folder / ESCI_EXAMPLES).exists():
        return "esci"
    if (folder / "catalog.jsonl").exists():
        return "generic"
    if any((folder / name).exists() for name in WANDS_COLUMNS):
        return "wands"
    raise DatasetError(
        f"{folder}: no known data set files; expected train.csv (Home Depot), query.csv/product.csv/label.csv "
        f"(WANDS), {ESCI_EXAMPLES} (ESCI) or catalog.jsonl + queries.jsonl + qrels.tsv (generic)"
    )


def load_dataset(path_or_name: str | os.PathLike | None = None, *, encoding: str = AUTO) -> Dataset:
    """Load a data set from a folder (format detected) or by name.

    ``path_or_name`` defaults to ``$LESER_DATA``, else "wands". Names: "home_depot" and "wands" resolve to
    ``<data_root()>/<name>`` (``$LESER_DATA_ROOT`` or ``../shared/data``); WANDS files missing there are
    downloaded once into ``<cache_dir()>/wands/``. ``encoding`` is Home Depot's ``train.csv`` encoding:
    "auto" (UTF-8 if the file decodes as UTF-8, else latin-1), "utf-8" or "latin-1"; the other formats fix
    their own.

    Raises:
        DatasetError: the path does not exist, the format is unknown, or a file is malformed.
    """
    spec = str(path_or_name or os.environ.get("LESER_DATA") or "wands")
    path = Path(spec).expanduser()
    if path.is_file():
        path = path.parent
    if path.is_dir():
        return _load_folder(path, encoding)
    if spec in _NAMES:
        folder = data_root() / spec
        if spec == "wands":
            return load_wands(folder if folder.is_dir() else None)
        if folder.is_dir():
            return load_home_depot(folder, encoding)
        raise DatasetError(f"home_depot: {folder} does not exist; set LESER_DATA_ROOT or LESER_DATA")
    raise DatasetError(f"{spec}: neither a folder nor a known data set name {_NAMES}")


def _load_folder(folder: Path, encoding: str) -> Dataset:
    kind = detect_format(folder)
    if kind == "home_depot":
        return load_home_depot(folder, encoding)
    return {"esci": load_esci, "generic": load_generic, "wands": load_wands}[kind](folder)
