"""WANDS (Wayfair ANnotation DataSet, MIT): three tab-separated files, downloaded once when missing.

Gain: Exact = 2, Partial = 1, Irrelevant = 0; relevant = Exact. The product text is ``product_name``.
Only ``query.csv`` is small enough to ship with most copies, so ``product.csv`` and ``label.csv`` are fetched
from github.com/wayfair/WANDS into the cache: atomically (a temporary file renamed into place), checked
against the expected header before use, and with a sha256 beside them so a corrupted file is fetched again.
"""
from __future__ import annotations

import hashlib
import logging
import os
import shutil
from pathlib import Path
from urllib.error import URLError
from urllib.request import urlopen

from ..paths import cache_dir
from .builder import Builder
from .core import Dataset, DatasetError
from .files import Skips, read_table

log = logging.getLogger("retrieval.datasets")

WANDS_URL = "https://raw.githubusercontent.com/wayfair/WANDS/main/dataset/{name}"
WANDS_COLUMNS = {
    "query.csv": ("query_id", "query"),
    "product.csv": ("product_id", "product_name"),
    "label.csv": ("query_id", "product_id", "label"),
}
WANDS_GAINS = {"exact": 2.0, "partial": 1.0, "irrelevant": 0.0}


def parse_wands(query_csv: Path, product_csv: Path, label_csv: Path) -> Dataset:
    """Build the WANDS data set from its three tab-separated files (product text = ``product_name``)."""
    builder = Builder()
    skips = Skips(product_csv)
    cols, rows = read_table(product_csv, WANDS_COLUMNS["product.csv"], delimiter="\t", skips=skips)
    for _, row in rows:
        builder.add_product(row[cols["product_id"]], row[cols["product_name"]], skips)
    skips.report()

    skips = Skips(query_csv)
    cols, rows = read_table(query_csv, WANDS_COLUMNS["query.csv"], delimiter="\t", skips=skips)
    for _, row in rows:
        builder.add_query(row[cols["query"]], skips, source_id=row[cols["query_id"]].strip())
    skips.report()

    skips = Skips(label_csv)
    cols, rows = read_table(label_csv, WANDS_COLUMNS["label.csv"], delimiter="\t", skips=skips)
    for _, row in rows:
        qid = builder.alias.get(row[cols["query_id"]].strip())
        gain = WANDS_GAINS.get(row[cols["label"]].strip().lower())
        if qid is None:
            skips.add("unknown query id")
        elif gain is None:
            skips.add("unknown label")
        else:
            builder.add_judgment(qid, row[cols["product_id"]], gain, skips)
    skips.report()
    return builder.build("wands", relevant_gain=WANDS_GAINS["exact"], source=label_csv)


def load_wands(folder: Path | None) -> Dataset:
    """WANDS from ``folder`` where its files are there, the rest from the cache (downloaded once)."""
    paths = []
    for name in ("query.csv", "product.csv", "label.csv"):
        local = folder / name if folder is not None else None
        paths.append(local if local is not None and local.exists() else cached_wands_file(name))
    return parse_wands(*paths)


def cached_wands_file(name: str) -> Path:
    """Path of a verified cached WANDS file, downloading it when absent or corrupt."""
    dest = cache_dir() / "wands" / name
    record = dest.with_name(dest.name + ".sha256")
    if dest.exists():
        if not record.exists() or record.read_text().strip() == _sha256(dest):
            return dest
        log.warning("%s: sha256 differs from the one recorded at download; downloading again", dest)
    _download_wands_file(name, dest)
    return dest


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _verify_wands_file(path: Path, name: str) -> None:
    """Header has the expected columns and at least one data row follows."""
    skips = Skips(path)
    _, rows = read_table(path, WANDS_COLUMNS[name], delimiter="\t", skips=skips)
    if next(rows, None) is None:
        raise DatasetError(f"{path}: no data rows")


def _download_wands_file(name: str, dest: Path) -> None:
    """Fetch one WANDS file into ``dest`` atomically (tmp + rename) and record its sha256 beside it."""
    url = WANDS_URL.format(name=name)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.{os.getpid()}.tmp")
    log.info("downloading %s -> %s", url, dest)
    try:
        with urlopen(url, timeout=60) as response, tmp.open("wb") as out:
            shutil.copyfileobj(response, out)
        _verify_wands_file(tmp, name)
    except (URLError, OSError) as exc:
        tmp.unlink(missing_ok=True)
        raise DatasetError(
            f"cannot download WANDS {name} from {url} ({exc}). Offline? Download the WANDS `dataset/` folder "
            "(github.com/wayfair/WANDS) elsewhere and point at it: LESER_DATA=/path/to/WANDS/dataset"
        ) from None
    except DatasetError:
        tmp.unlink(missing_ok=True)
        raise
    os.replace(tmp, dest)
    dest.with_name(dest.name + ".sha256").write_text(_sha256(dest) + "\n")
