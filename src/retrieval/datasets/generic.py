"""The generic layout, for bringing your own data: JSON lines for catalog and queries, a TSV of judgments.

``catalog.jsonl`` {"id", "text"|"title"}, ``queries.jsonl`` {"id", "text"}, ``qrels.tsv`` (query_id,
product_id, gain; header optional), optional ``dataset.json`` {"name", "relevant_gain"}. Gains are used as
given; an item is relevant at ``relevant_gain`` (default 1).
"""
from __future__ import annotations

import json
import math
from pathlib import Path

from .builder import Builder
from .core import Dataset, DatasetError
from .files import Skips, parse_float, read_delimited, read_jsonl, read_text


def load_generic(folder: Path) -> Dataset:
    meta_path = folder / "dataset.json"
    meta = json.loads(read_text(meta_path, "utf-8")) if meta_path.exists() else {}
    builder = Builder()

    catalog = folder / "catalog.jsonl"
    skips = Skips(catalog)
    for _, obj in read_jsonl(catalog, skips):
        text = obj.get("text", obj.get("title"))
        if "id" not in obj or not isinstance(text, str):
            skips.add('missing "id" or "text"/"title"')
            continue
        builder.add_product(str(obj["id"]), text, skips)
    skips.report()
    if not builder.product_ids:
        raise DatasetError(f"{catalog}: empty catalog (no usable product lines)")

    queries = folder / "queries.jsonl"
    skips = Skips(queries)
    for _, obj in read_jsonl(queries, skips):
        if "id" not in obj or not isinstance(obj.get("text"), str):
            skips.add('missing "id" or "text"')
            continue
        builder.add_query(obj["text"], skips, source_id=str(obj["id"]))
    skips.report()

    _read_qrels(folder / "qrels.tsv", builder)
    name = str(meta.get("name", folder.name))
    relevant_gain = float(meta.get("relevant_gain", 1.0))
    if not math.isfinite(relevant_gain):
        raise DatasetError(f"{folder / 'dataset.json'}: relevant_gain {relevant_gain} is not a finite number")
    return builder.build(name, relevant_gain=relevant_gain, source=folder / "qrels.tsv")


def _read_qrels(path: Path, builder: Builder) -> None:
    skips = Skips(path)
    for line_no, row in read_delimited(path, delimiter="\t"):
        if not row:
            continue
        if len(row) != 3:
            skips.add("malformed line (expected query_id, product_id, gain)")
            continue
        gain = parse_float(row[2])
        if gain is None:
            if line_no != 1:  # line 1 may be a header
                skips.add("gain is not a number")
            continue
        if not math.isfinite(gain):  # a nan or inf gain would turn every metric and reward it touches into nan
            raise DatasetError(f"{path}: line {line_no}: gain {row[2].strip()!r} is not a finite number")
        qid = builder.alias.get(row[0].strip())
        if qid is None:
            skips.add("unknown query id")
            continue
        builder.add_judgment(qid, row[1], gain, skips)
    skips.report()
