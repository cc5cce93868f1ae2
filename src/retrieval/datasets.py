"""Product-search relevance data sets: one in-memory form for Home Depot, WANDS, ESCI and a generic layout.

A :class:`Dataset` holds a catalog (row ``i`` = one product), the query texts, and graded judgments keyed by
catalog ROW INDEX (not product id), so a search engine's output ids can be scored directly.

Gain mappings (``qrels`` values; ``relevant_gain`` is the threshold for recall/MRR):

============  ==========================================  ===============
format        gain                                        relevant_gain
============  ==========================================  ===============
Home Depot    mean rating − 1  (0 .. 2)                   1.0 (rating ≥ 2)
WANDS         Exact = 2, Partial = 1, Irrelevant = 0      2.0 (Exact)
ESCI          E = 3, S = 2, C = 1, I = 0                  3.0 (Exact)
generic       the ``gain`` column as given                ``dataset.json`` or 1.0
============  ==========================================  ===============

Splits are a pure function of the query text (see :func:`split_of`): 80 % train, 10 % valid, 10 % test.
Queries whose texts differ only in case or whitespace are merged into one query (same id, same split).
"""
from __future__ import annotations

import csv
import hashlib
import io
import json
import logging
import math
import os
import shutil
import sys
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.error import URLError
from urllib.request import urlopen

from .paths import cache_dir, data_root

__all__ = [
    "Dataset",
    "DatasetError",
    "SPLITS",
    "load_dataset",
    "normalise_query",
    "query_id_for",
    "split_of",
]

log = logging.getLogger(__name__)

SPLITS = ("train", "valid", "test")
# Buckets of sha1(normalised query) mod 100: [0, 80) train, [80, 90) valid, [90, 100) test.
_SPLIT_BOUNDS = {"train": (0, 80), "valid": (80, 90), "test": (90, 100)}

WANDS_URL = "https://raw.githubusercontent.com/wayfair/WANDS/main/dataset/{name}"
WANDS_COLUMNS = {
    "query.csv": ("query_id", "query"),
    "product.csv": ("product_id", "product_name"),
    "label.csv": ("query_id", "product_id", "label"),
}
WANDS_GAINS = {"exact": 2.0, "partial": 1.0, "irrelevant": 0.0}
ESCI_GAINS = {"E": 3.0, "S": 2.0, "C": 1.0, "I": 0.0}
ESCI_EXAMPLES = "shopping_queries_dataset_examples.parquet"
ESCI_PRODUCTS = "shopping_queries_dataset_products.parquet"

# WANDS product descriptions exceed csv's default 128 KiB field limit; sys.maxsize overflows a C long on
# some platforms, 2**31 - 1 does not.
csv.field_size_limit(min(sys.maxsize, 2**31 - 1))


class DatasetError(ValueError):
    """A data file is missing, unreadable or malformed; the message names the file and line or column."""


# --------------------------------------------------------------------------------------------------- Dataset


def normalise_query(text: str) -> str:
    """Lower-case and collapse runs of whitespace; the identity of a query for ids, splits and merging."""
    return " ".join(text.lower().split())


def query_id_for(text: str) -> str:
    """Stable short id of a query text: ``"q"`` + 12 hex digits of sha1(normalised text)."""
    return "q" + hashlib.sha1(normalise_query(text).encode("utf-8")).hexdigest()[:12]


def split_of(text: str) -> str:
    """Split ("train" / "valid" / "test") of a query text: sha1(normalised text) mod 100 -> 80/10/10."""
    bucket = int(hashlib.sha1(normalise_query(text).encode("utf-8")).hexdigest(), 16) % 100
    return next(name for name, (lo, hi) in _SPLIT_BOUNDS.items() if lo <= bucket < hi)


@dataclass
class Dataset:
    """A catalog, its queries and graded judgments.

    Attributes:
        name: data set name ("home_depot", "wands", "esci", or the generic folder's name).
        product_ids: ``[n_products]`` source product id of catalog row ``i``.
        product_texts: ``[n_products]`` text to encode/search for catalog row ``i``.
        queries: query id -> query text.
        qrels: query id -> {catalog row index: gain}; gain 0 = judged not relevant. Every query has an entry.
        relevant_gain: gain at or above which an item counts as relevant for recall and MRR.
    """

    name: str
    product_ids: list[str]
    product_texts: list[str]
    queries: dict[str, str]
    qrels: dict[str, dict[int, float]]
    relevant_gain: float

    def __post_init__(self) -> None:
        if len(self.product_ids) != len(self.product_texts):
            raise DatasetError(
                f"{self.name}: {len(self.product_ids)} product ids but {len(self.product_texts)} product texts"
            )
        if not self.product_ids:
            raise DatasetError(f"{self.name}: empty catalog")

    def split(self, name: str) -> list[str]:
        """Query ids of split ``name`` ("train", "valid" or "test"), in ``queries`` order."""
        if name not in _SPLIT_BOUNDS:
            raise ValueError(f"unknown split {name!r}; expected one of {SPLITS}")
        return [qid for qid, text in self.queries.items() if split_of(text) == name]

    def query_text(self, qid: str) -> str:
        """Text of query ``qid`` (KeyError if unknown)."""
        return self.queries[qid]

    def relevant(self, qid: str) -> list[int]:
        """Catalog rows with gain >= ``relevant_gain`` for query ``qid``."""
        return [row for row, gain in self.qrels.get(qid, {}).items() if gain >= self.relevant_gain]

    def summary(self) -> str:
        """One line: sizes of catalog, queries, judgments and splits."""
        n_judged = sum(len(j) for j in self.qrels.values())
        n_rel = sum(len(self.relevant(q)) for q in self.qrels)
        sizes = ", ".join(f"{s} {len(self.split(s))}" for s in SPLITS)
        return (
            f"{self.name}: {len(self.product_ids):,} products, {len(self.queries):,} queries ({sizes}), "
            f"{n_judged:,} judgments ({n_rel:,} with gain >= {self.relevant_gain:g})"
        )


# ---------------------------------------------------------------------------------------------- file reading


class _Skips:
    """Counts skipped records by reason and logs one warning per file, so bad rows never pass silently."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.counts: Counter[str] = Counter()

    def add(self, reason: str) -> None:
        self.counts[reason] += 1

    def report(self) -> None:
        if self.counts:
            detail = ", ".join(f"{reason}: {n}" for reason, n in sorted(self.counts.items()))
            log.warning("%s: skipped %d record(s) (%s)", self.path, sum(self.counts.values()), detail)


def _read_text(path: Path, encoding: str) -> str:
    """Whole file decoded; an undecodable byte becomes a DatasetError naming the line."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise DatasetError(f"{path}: cannot read ({exc.strerror or exc})") from exc
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise DatasetError(
            f"{path}: line {line}: byte 0x{data[exc.start]:02x} is not valid {encoding}"
        ) from None


def _read_table(
    path: Path, required: Iterable[str], *, delimiter: str = ",", encoding: str = "utf-8-sig", skips: _Skips
) -> tuple[dict[str, int], Iterator[tuple[int, list[str]]]]:
    """Header column index and an iterator of ``(line number, fields)`` for a delimited text file.

    Rows whose field count differs from the header's are counted in ``skips`` as malformed.
    """
    # StringIO(newline="") rather than splitlines(): the latter also splits at \x0b, \x1c, \u2028 ..., which
    # may occur inside quoted product descriptions.
    reader = csv.reader(io.StringIO(_read_text(path, encoding), newline=""), delimiter=delimiter)
    try:
        header = [name.strip() for name in next(reader)]
    except StopIteration:
        raise DatasetError(f"{path}: empty file, expected a header line") from None
    except csv.Error as exc:
        raise DatasetError(f"{path}: line 1: {exc}") from None
    missing = [name for name in required if name not in header]
    if missing:
        raise DatasetError(f"{path}: line 1: missing column(s) {missing}; found {header}")
    return {name: i for i, name in enumerate(header)}, _table_rows(path, reader, len(header), skips)


def _table_rows(path: Path, reader, width: int, skips: _Skips) -> Iterator[tuple[int, list[str]]]:
    # csv counts physical lines, so a quoted field spanning lines still reports where its record ends.
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            raise DatasetError(f"{path}: line {reader.line_num}: {exc}") from None
        if not row:
            continue
        if len(row) != width:
            skips.add(f"malformed line ({len(row)} fields, expected {width})")
            continue
        yield reader.line_num, row


def _read_jsonl(path: Path, skips: _Skips) -> Iterator[tuple[int, dict]]:
    """``(line number, object)`` per non-blank line; lines that are not JSON objects are counted and skipped."""
    for line_no, line in enumerate(io.StringIO(_read_text(path, "utf-8-sig"), newline=""), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError:
            skips.add("malformed JSON line")
            continue
        if not isinstance(obj, dict):
            skips.add("JSON line is not an object")
            continue
        yield line_no, obj


# ------------------------------------------------------------------------------------------------- assembly


class _Builder:
    """Accumulates catalog rows, queries and (averaged) judgments while a format is parsed."""

    def __init__(self) -> None:
        self.product_ids: list[str] = []
        self.product_texts: list[str] = []
        self.row_of: dict[str, int] = {}
        self.queries: dict[str, str] = {}
        self.alias: dict[str, str] = {}  # source query id -> our query id
        self.judgments: dict[str, dict[int, list[float]]] = defaultdict(lambda: defaultdict(list))

    def add_product(self, pid: str, text: str, skips: _Skips) -> None:
        pid, text = pid.strip(), " ".join(text.split())
        if not pid:
            skips.add("empty product id")
        elif pid in self.row_of:
            skips.add("duplicate product id")
        elif not text:
            skips.add("empty product text")
        else:
            self.row_of[pid] = len(self.product_ids)
            self.product_ids.append(pid)
            self.product_texts.append(text)

    def add_query(self, text: str, skips: _Skips, source_id: str | None = None) -> str | None:
        """Register a query text; returns its id, or None (counted) when the text is empty."""
        text = " ".join(text.split())
        if not text:
            skips.add("empty query")
            return None
        qid = query_id_for(text)
        if source_id is not None:
            if source_id in self.alias:
                skips.add("duplicate query id")
                return None
            self.alias[source_id] = qid
        if qid in self.queries and source_id is not None:
            skips.add("duplicate query text (merged)")
        self.queries.setdefault(qid, text)
        return qid

    def add_judgment(self, qid: str, pid: str, gain: float, skips: _Skips) -> None:
        row = self.row_of.get(pid.strip())
        if row is None:
            skips.add("unknown product id")
            return
        if self.judgments[qid][row]:
            skips.add("duplicate judgment (averaged)")
        self.judgments[qid][row].append(gain)

    def build(self, name: str, relevant_gain: float, source: Path) -> Dataset:
        if not self.product_ids:
            raise DatasetError(f"{source}: empty catalog (no usable product rows)")
        skips = _Skips(source)
        qrels: dict[str, dict[int, float]] = {}
        queries: dict[str, str] = {}
        for qid, text in self.queries.items():
            judged = self.judgments.get(qid)
            if not judged:
                skips.add("query without judgments")
                continue
            queries[qid] = text
            qrels[qid] = {row: sum(g) / len(g) for row, g in judged.items()}
        skips.report()
        if not queries:
            raise DatasetError(f"{source}: no query has a judgment for a catalog product")
        return Dataset(name, self.product_ids, self.product_texts, queries, qrels, relevant_gain)


def _parse_float(value: str) -> float | None:
    try:
        return float(value)
    except ValueError:
        return None


# ----------------------------------------------------------------------------------------------- Home Depot


def _load_home_depot(folder: Path) -> Dataset:
    """Kaggle Home Depot: ``train.csv`` (latin-1) and, when present, the full catalog ``products.csv``."""
    train, products = folder / "train.csv", folder / "products.csv"
    builder = _Builder()
    if products.exists():
        skips = _Skips(products)
        cols, rows = _read_table(products, ("product_uid", "product_title"), skips=skips)
        for _, row in rows:
            builder.add_product(row[cols["product_uid"]], row[cols["product_title"]], skips)
        skips.report()
        if not builder.product_ids:
            raise DatasetError(f"{products}: empty catalog (no usable product rows)")
    fixed_catalog = bool(builder.product_ids)

    skips = _Skips(train)
    required = ("product_uid", "product_title", "search_term", "relevance")
    cols, rows = _read_table(train, required, encoding="latin-1", skips=skips)
    for _, row in rows:
        relevance = _parse_float(row[cols["relevance"]])
        if relevance is None or not 1.0 <= relevance <= 3.0:
            skips.add("relevance not a number in [1, 3]")
            continue
        qid = builder.add_query(row[cols["search_term"]], skips)
        if qid is None:
            continue
        pid = row[cols["product_uid"]]
        if not fixed_catalog and pid.strip() not in builder.row_of:
            builder.add_product(pid, row[cols["product_title"]], skips)
        builder.add_judgment(qid, pid, relevance - 1.0, skips)
    skips.report()
    return builder.build("home_depot", relevant_gain=1.0, source=train)


# ---------------------------------------------------------------------------------------------------- WANDS


def parse_wands(query_csv: Path, product_csv: Path, label_csv: Path) -> Dataset:
    """Build the WANDS data set from its three tab-separated files (product text = ``product_name``)."""
    builder = _Builder()
    skips = _Skips(product_csv)
    cols, rows = _read_table(product_csv, WANDS_COLUMNS["product.csv"], delimiter="\t", skips=skips)
    for _, row in rows:
        builder.add_product(row[cols["product_id"]], row[cols["product_name"]], skips)
    skips.report()

    skips = _Skips(query_csv)
    cols, rows = _read_table(query_csv, WANDS_COLUMNS["query.csv"], delimiter="\t", skips=skips)
    for _, row in rows:
        builder.add_query(row[cols["query"]], skips, source_id=row[cols["query_id"]].strip())
    skips.report()

    skips = _Skips(label_csv)
    cols, rows = _read_table(label_csv, WANDS_COLUMNS["label.csv"], delimiter="\t", skips=skips)
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


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _verify_wands_file(path: Path, name: str) -> None:
    """Header has the expected columns and at least one data row follows."""
    skips = _Skips(path)
    _, rows = _read_table(path, WANDS_COLUMNS[name], delimiter="\t", skips=skips)
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


def _cached_wands_file(name: str) -> Path:
    """Path of a verified cached WANDS file, downloading it when absent or corrupt."""
    dest = cache_dir() / "wands" / name
    record = dest.with_name(dest.name + ".sha256")
    if dest.exists():
        if not record.exists() or record.read_text().strip() == _sha256(dest):
            return dest
        log.warning("%s: sha256 differs from the one recorded at download; downloading again", dest)
    _download_wands_file(name, dest)
    return dest


def _load_wands(folder: Path | None) -> Dataset:
    """WANDS from ``folder`` where its files are there, the rest from the cache (downloaded once)."""
    paths = []
    for name in ("query.csv", "product.csv", "label.csv"):
        local = folder / name if folder is not None else None
        paths.append(local if local is not None and local.exists() else _cached_wands_file(name))
    return parse_wands(*paths)


# ----------------------------------------------------------------------------------------------------- ESCI


def build_esci(examples: dict[str, list], products: dict[str, list], locale: str = "us") -> Dataset:
    """ESCI from column dicts (as ``pyarrow.Table.to_pydict()`` gives), keeping one ``product_locale``.

    ``examples`` needs query_id, query, product_id, product_locale, esci_label; ``products`` needs
    product_id, product_title, product_locale. Product ids are unique only per locale, hence the filter.
    """
    source = Path(ESCI_EXAMPLES)
    builder = _Builder()
    skips = _Skips(Path(ESCI_PRODUCTS))
    for pid, title, loc in zip(products["product_id"], products["product_title"], products["product_locale"]):
        if loc == locale:
            builder.add_product(str(pid), title or "", skips)
    skips.report()
    if not builder.product_ids:
        raise DatasetError(f"{ESCI_PRODUCTS}: empty catalog for product_locale={locale!r}")

    skips = _Skips(source)
    columns = zip(
        examples["query_id"], examples["query"], examples["product_id"],
        examples["product_locale"], examples["esci_label"],
    )
    for source_qid, text, pid, loc, label in columns:
        if loc != locale:
            continue
        gain = ESCI_GAINS.get(label)
        if gain is None:
            skips.add("unknown esci_label")
            continue
        # One query id per text in ESCI, so register by text and ignore the repeated source id.
        qid = builder.add_query(text or "", skips)
        if qid is not None:
            builder.alias.setdefault(str(source_qid), qid)
            builder.add_judgment(qid, str(pid), gain, skips)
    skips.report()
    return builder.build("esci", relevant_gain=ESCI_GAINS["E"], source=source)


def _read_parquet_columns(path: Path, columns: list[str]) -> dict[str, list]:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise DatasetError(f"{path}: reading ESCI parquet files needs pyarrow: pip install pyarrow") from None
    try:
        names = pq.read_schema(path).names
    except Exception as exc:  # pyarrow raises its own error types for corrupt files
        raise DatasetError(f"{path}: not a readable parquet file ({exc})") from None
    missing = [c for c in columns if c not in names]
    if missing:
        raise DatasetError(f"{path}: missing column(s) {missing}; found {names}")
    return pq.read_table(path, columns=columns).to_pydict()


def _load_esci(folder: Path) -> Dataset:
    examples = _read_parquet_columns(
        folder / ESCI_EXAMPLES, ["query_id", "query", "product_id", "product_locale", "esci_label"]
    )
    products = _read_parquet_columns(folder / ESCI_PRODUCTS, ["product_id", "product_title", "product_locale"])
    return build_esci(examples, products)


# -------------------------------------------------------------------------------------------------- generic


def _load_generic(folder: Path) -> Dataset:
    """``catalog.jsonl`` {"id", "text"|"title"}, ``queries.jsonl`` {"id", "text"}, ``qrels.tsv``
    (query_id, product_id, gain; header optional), optional ``dataset.json`` {"name", "relevant_gain"}."""
    meta_path = folder / "dataset.json"
    meta = json.loads(_read_text(meta_path, "utf-8")) if meta_path.exists() else {}
    builder = _Builder()

    catalog = folder / "catalog.jsonl"
    skips = _Skips(catalog)
    for _, obj in _read_jsonl(catalog, skips):
        text = obj.get("text", obj.get("title"))
        if "id" not in obj or not isinstance(text, str):
            skips.add('missing "id" or "text"/"title"')
            continue
        builder.add_product(str(obj["id"]), text, skips)
    skips.report()
    if not builder.product_ids:
        raise DatasetError(f"{catalog}: empty catalog (no usable product lines)")

    queries = folder / "queries.jsonl"
    skips = _Skips(queries)
    for _, obj in _read_jsonl(queries, skips):
        if "id" not in obj or not isinstance(obj.get("text"), str):
            skips.add('missing "id" or "text"')
            continue
        builder.add_query(obj["text"], skips, source_id=str(obj["id"]))
    skips.report()

    _read_generic_qrels(folder / "qrels.tsv", builder)
    name = str(meta.get("name", folder.name))
    relevant_gain = float(meta.get("relevant_gain", 1.0))
    if not math.isfinite(relevant_gain):
        raise DatasetError(f"{meta_path}: relevant_gain {relevant_gain} is not a finite number")
    return builder.build(name, relevant_gain=relevant_gain, source=folder / "qrels.tsv")


def _read_generic_qrels(path: Path, builder: _Builder) -> None:
    skips = _Skips(path)
    reader = csv.reader(io.StringIO(_read_text(path, "utf-8-sig"), newline=""), delimiter="\t")
    for line_no, row in enumerate(reader, 1):
        if not row:
            continue
        if len(row) != 3:
            skips.add("malformed line (expected query_id, product_id, gain)")
            continue
        gain = _parse_float(row[2])
        if gain is None:
            if line_no != 1:  # line 1 may be a header
                skips.add("gain is not a number")
            continue
        if not math.isfinite(gain):  # a nan/inf gain would reach the reward and poison the update
            raise DatasetError(f"{path}: line {line_no}: gain {row[2].strip()!r} is not a finite number")
        qid = builder.alias.get(row[0].strip())
        if qid is None:
            skips.add("unknown query id")
            continue
        builder.add_judgment(qid, row[1], gain, skips)
    skips.report()


# ---------------------------------------------------------------------------------------------- resolution

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


_LOADERS = {"home_depot": _load_home_depot, "esci": _load_esci, "generic": _load_generic, "wands": _load_wands}


def load_dataset(path_or_name: str | os.PathLike | None = None) -> Dataset:
    """Load a data set from a folder (format detected) or by name.

    ``path_or_name`` defaults to ``$LESER_DATA``, else "wands". Names: "home_depot" and "wands" resolve to
    ``<data_root()>/<name>`` (``$LESER_DATA_ROOT`` or ``../shared/data``); WANDS files missing there are
    downloaded once into ``<cache_dir()>/wands/``.

    Raises:
        DatasetError: the path does not exist, the format is unknown, or a file is malformed.
    """
    spec = str(path_or_name or os.environ.get("LESER_DATA") or "wands")
    path = Path(spec).expanduser()
    if path.is_file():
        path = path.parent
    if path.is_dir():
        return _LOADERS[detect_format(path)](path)
    if spec in _NAMES:
        folder = data_root() / spec
        if spec == "wands":
            return _load_wands(folder if folder.is_dir() else None)
        if folder.is_dir():
            return _load_home_depot(folder)
        raise DatasetError(f"home_depot: {folder} does not exist; set LESER_DATA_ROOT or LESER_DATA")
    raise DatasetError(f"{spec}: neither a folder nor a known data set name {_NAMES}")
