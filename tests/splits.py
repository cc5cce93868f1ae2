"""A data set with queries in every split: texts chosen so that the split hash
(:func:`retrieval.datasets.core.split_of`) puts them in train, valid and test, as a Dataset or a generic folder."""
from __future__ import annotations

import json
from pathlib import Path

from retrieval import Dataset
from retrieval.datasets.core import query_id_for, split_of
from test_retrieval_engine import CATALOG

SPLIT_NAMES = ("train", "valid", "test")
WORDS = ("drill", "sofa", "bulb", "faucet")


def queries_of_split(split: str, n: int) -> list[str]:
    """The first ``n`` texts ``"<word> <i>"`` (words of CATALOG) that the split hash puts in ``split``."""
    found, i = [], 0
    while len(found) < n:
        text = f"{WORDS[i % len(WORDS)]} {i}"
        if split_of(text) == split:
            found.append(text)
        i += 1
    return found


def split_dataset(per_split: int = 3) -> Dataset:
    """``per_split`` queries per split, ids ``train0``, ``valid1``, ...; each has one relevant item (gain 2) and
    one judged irrelevant (gain 0) over CATALOG."""
    texts = {s: queries_of_split(s, per_split) for s in SPLIT_NAMES}
    queries = {f"{s}{i}": t for s, ts in texts.items() for i, t in enumerate(ts)}
    qrels = {qid: {i % len(CATALOG): 2.0, (i + 1) % len(CATALOG): 0.0} for i, qid in enumerate(queries)}
    return Dataset(name="splits", product_ids=[f"p{i}" for i in range(len(CATALOG))], product_texts=list(CATALOG),
                   queries=queries, qrels=qrels, relevant_gain=2.0)


def write_split_folder(folder: Path, per_split: int = 3) -> dict[str, set[str]]:
    """A generic data folder (catalog.jsonl, queries.jsonl, qrels.tsv; relevant gain 2) with ``per_split`` judged
    queries per split that have a relevant item, and one more per split judged with nothing relevant (so the
    labels' filter drops it). Returns the ids (:func:`query_id_for`, as the loader names them) that a labelled
    run may use, per split."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "catalog.jsonl").write_text("".join(json.dumps({"id": f"p{i}", "text": t}) + "\n"
                                                  for i, t in enumerate(CATALOG)))
    queries, qrels, usable = [], [], {s: set() for s in SPLIT_NAMES}
    for s in SPLIT_NAMES:
        *judged, unjudged = queries_of_split(s, per_split + 1)
        for i, text in enumerate(judged):
            source = f"{s}{i}"
            queries.append((source, text))
            row = len(queries) % len(CATALOG)
            qrels += [(source, f"p{(row + 1) % len(CATALOG)}", 2), (source, f"p{row}", 0)]
            usable[s].add(query_id_for(text))
        queries.append((f"{s}-none", unjudged))
        qrels.append((f"{s}-none", "p0", 1))  # judged, but below the relevant gain
    (folder / "queries.jsonl").write_text("".join(json.dumps({"id": q, "text": t}) + "\n" for q, t in queries))
    (folder / "qrels.tsv").write_text("".join(f"{q}\t{p}\t{g}\n" for q, p, g in qrels))
    (folder / "dataset.json").write_text(json.dumps({"name": "splits", "relevant_gain": 2.0}))
    return usable
