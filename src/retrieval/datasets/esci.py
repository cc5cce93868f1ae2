"""ESCI (Amazon Shopping Queries): two parquet files, one locale (US by default); needs ``pyarrow``.

Gain: E = 3, S = 2, C = 1, I = 0; relevant = E (Exact). Product ids are unique only per locale, so the
catalog and the judgments are filtered to one ``product_locale``.
"""
from __future__ import annotations

from pathlib import Path

from .builder import Builder
from .core import Dataset, DatasetError
from .files import Skips

ESCI_GAINS = {"E": 3.0, "S": 2.0, "C": 1.0, "I": 0.0}
ESCI_EXAMPLES = "shopping_queries_dataset_examples.parquet"
ESCI_PRODUCTS = "shopping_queries_dataset_products.parquet"


def build_esci(examples: dict[str, list], products: dict[str, list], locale: str = "us") -> Dataset:
    """ESCI from column dicts (as ``pyarrow.Table.to_pydict()`` gives), keeping one ``product_locale``.

    ``examples`` needs query_id, query, product_id, product_locale, esci_label; ``products`` needs
    product_id, product_title, product_locale.
    """
    source = Path(ESCI_EXAMPLES)
    builder = Builder()
    skips = Skips(Path(ESCI_PRODUCTS))
    for pid, title, loc in zip(products["product_id"], products["product_title"], products["product_locale"]):
        if loc == locale:
            builder.add_product(str(pid), title or "", skips)
    skips.report()
    if not builder.product_ids:
        raise DatasetError(f"{ESCI_PRODUCTS}: empty catalog for product_locale={locale!r}")

    skips = Skips(source)
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


def load_esci(folder: Path) -> Dataset:
    examples = _read_parquet_columns(
        folder / ESCI_EXAMPLES, ["query_id", "query", "product_id", "product_locale", "esci_label"]
    )
    products = _read_parquet_columns(folder / ESCI_PRODUCTS, ["product_id", "product_title", "product_locale"])
    return build_esci(examples, products)


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
