"""The in-memory form every format loads into: :class:`Dataset`, its error type, query identity and splits.

A :class:`Dataset` holds a catalog (row ``i`` = one product), the query texts, and graded judgments keyed by
catalog ROW INDEX (not product id), so a search engine's output ids can be scored directly.

Splits are a pure function of the query text (see :func:`split_of`): 80 % train, 10 % valid, 10 % test, so
they never depend on file order and a query never changes split between runs or machines.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

SPLITS = ("train", "valid", "test")
# Buckets of sha1(normalised query) mod 100: [0, 80) train, [80, 90) valid, [90, 100) test.
_SPLIT_BOUNDS = {"train": (0, 80), "valid": (80, 90), "test": (90, 100)}


class DatasetError(ValueError):
    """A data file is missing, unreadable or malformed; the message names the file and line or column."""


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
        encodings: file name -> text encoding it was read with, where that was detected rather than fixed by
            the format (Home Depot's ``train.csv``), so a run can say how its data was decoded.
    """

    name: str
    product_ids: list[str]
    product_texts: list[str]
    queries: dict[str, str]
    qrels: dict[str, dict[int, float]]
    relevant_gain: float
    encodings: dict[str, str] = field(default_factory=dict)

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
