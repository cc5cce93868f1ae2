"""Assembling a :class:`Dataset` while a format is parsed: catalog rows, merged queries, averaged judgments.

Every format feeds the same builder, so the rules for duplicates, empty texts and unknown ids are written
once: a duplicate product id keeps the first row, queries equal after normalisation merge into one, repeated
judgments of a (query, product) pair are averaged, and a query left without judgments is dropped. Each of
these is counted in the file's :class:`Skips`.
"""
from __future__ import annotations

from collections import defaultdict
from pathlib import Path

from .core import Dataset, DatasetError, query_id_for
from .files import Skips


class Builder:
    """Accumulates catalog rows, queries and (averaged) judgments while a format is parsed."""

    def __init__(self) -> None:
        self.product_ids: list[str] = []
        self.product_texts: list[str] = []
        self.row_of: dict[str, int] = {}
        self.queries: dict[str, str] = {}
        self.alias: dict[str, str] = {}  # source query id -> our query id
        self.judgments: dict[str, dict[int, list[float]]] = defaultdict(lambda: defaultdict(list))

    def add_product(self, pid: str, text: str, skips: Skips) -> None:
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

    def add_query(self, text: str, skips: Skips, source_id: str | None = None) -> str | None:
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

    def add_judgment(self, qid: str, pid: str, gain: float, skips: Skips) -> None:
        row = self.row_of.get(pid.strip())
        if row is None:
            skips.add("unknown product id")
            return
        if self.judgments[qid][row]:
            skips.add("duplicate judgment (averaged)")
        self.judgments[qid][row].append(gain)

    def build(self, name: str, relevant_gain: float, source: Path,
              encodings: dict[str, str] | None = None) -> Dataset:
        if not self.product_ids:
            raise DatasetError(f"{source}: empty catalog (no usable product rows)")
        skips = Skips(source)
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
        return Dataset(name, self.product_ids, self.product_texts, queries, qrels, relevant_gain, encodings or {})
