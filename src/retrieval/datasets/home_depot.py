"""Home Depot Product Search Relevance (Kaggle, 2016): ``train.csv`` and, when present, ``products.csv``.

Gain = mean rating - 1 (0 .. 2); an item is relevant at a rating of 2 or more (gain >= 1). ``products.csv``
(UTF-8), when present, is the catalog to search; without it the catalog is the products ``train.csv`` names.

Kaggle's ``train.csv`` is latin-1, but a re-saved copy is often UTF-8; reading one as the other silently
garbles every non-ASCII title (``90Â°``). So its encoding is a setting, detected by default (see
:func:`files.decode`), and the one used is recorded in ``Dataset.encodings``. Titles carry HTML entities
(``K&amp;H``) in both files; they are unescaped here, so the engine and the policy see the text a shopper does.
"""
from __future__ import annotations

import html
import logging
from pathlib import Path

from .builder import Builder
from .core import Dataset, DatasetError
from .files import AUTO, Skips, decode, parse_float, read_bytes, read_table

log = logging.getLogger("retrieval.datasets")

TRAIN_COLUMNS = ("product_uid", "product_title", "search_term", "relevance")
PRODUCT_COLUMNS = ("product_uid", "product_title")


def clean_title(title: str) -> str:
    """A catalog title as shown to a shopper: HTML entities unescaped (``K&amp;H`` -> ``K&H``)."""
    return html.unescape(title)


def load_home_depot(folder: Path, encoding: str = AUTO) -> Dataset:
    """``train.csv`` (``encoding``: "auto", "utf-8" or "latin-1") and the catalog ``products.csv`` if present."""
    train, products = folder / "train.csv", folder / "products.csv"
    builder = Builder()
    if products.exists():
        _read_products(products, builder)
    fixed_catalog = bool(builder.product_ids)

    text, used = decode(train, read_bytes(train), encoding)
    log.info("%s: read as %s", train, used)
    skips = Skips(train)
    cols, rows = read_table(train, TRAIN_COLUMNS, skips=skips, text=text)
    for _, row in rows:
        relevance = parse_float(row[cols["relevance"]])
        if relevance is None or not 1.0 <= relevance <= 3.0:
            skips.add("relevance not a number in [1, 3]")
            continue
        qid = builder.add_query(row[cols["search_term"]], skips)
        if qid is None:
            continue
        pid = row[cols["product_uid"]]
        if not fixed_catalog and pid.strip() not in builder.row_of:
            builder.add_product(pid, clean_title(row[cols["product_title"]]), skips)
        builder.add_judgment(qid, pid, relevance - 1.0, skips)
    skips.report()
    return builder.build("home_depot", relevant_gain=1.0, source=train, encodings={train.name: used})


def _read_products(path: Path, builder: Builder) -> None:
    skips = Skips(path)
    cols, rows = read_table(path, PRODUCT_COLUMNS, skips=skips)
    for _, row in rows:
        builder.add_product(row[cols["product_uid"]], clean_title(row[cols["product_title"]]), skips)
    skips.report()
    if not builder.product_ids:
        raise DatasetError(f"{path}: empty catalog (no usable product rows)")
