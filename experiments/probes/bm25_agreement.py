"""Our stemmed BM25 (bm25s, Lucene variant) against a second implementation (rank_bm25's Okapi BM25) on the real
catalog: the same tokens (lower-cased, English stopwords removed, Snowball-stemmed) go to both, so what differs
is only the scoring code (and Lucene's idf, which never goes negative, against Okapi's floored idf).

    pip install rank_bm25 && python experiments/probes/bm25_agreement.py --queries 300
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from leser.config import load_config
from leser.evaluate import provenance
from leser.queries import trainable_queries
from retrieval import BM25Engine, load_dataset


def main() -> None:
    from rank_bm25 import BM25Okapi

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--config", default="experiments/configs/hybrid.toml")
    ap.add_argument("--queries", type=int, default=300)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--output", default="runs/probe_bm25_agreement.json")
    args = ap.parse_args()
    cfg = load_config(args.config)
    dataset = load_dataset(cfg.data.path)
    engine = BM25Engine(dataset.product_texts, stemmer=cfg.engine.stemmer or None)
    tokenizer = engine.tokenizer
    vocab = {i: w for w, i in tokenizer.get_vocab_dict().items()}
    corpus = tokenizer.tokenize(dataset.product_texts, update_vocab=False, show_progress=False, return_as="ids")
    reference = BM25Okapi([[vocab[i] for i in doc] for doc in corpus], k1=1.5, b=0.75)
    qids = trainable_queries(cfg, dataset, "valid")[: args.queries]
    queries = [dataset.queries[q] for q in qids]
    ours, _ = engine.search(queries, args.k)
    query_tokens = tokenizer.tokenize(queries, update_vocab=False, show_progress=False, return_as="ids")
    overlap, top1 = [], []
    for row, tokens in zip(ours.tolist(), query_tokens):
        words = [vocab[i] for i in tokens if vocab.get(i)]
        scores = reference.get_scores(words)
        expected = [int(i) for i in np.argsort(-scores, kind="stable")[: args.k] if scores[i] > 0]
        got = [i for i in row if i >= 0]
        if not expected and not got:
            continue
        overlap.append(len(set(got) & set(expected)) / max(len(expected), len(got)))
        top1.append(bool(got and expected and scores[got[0]] == scores[expected[0]]))
    result = {"split": "valid", "queries": len(overlap), "k": args.k, "mean_overlap_at_k": float(np.mean(overlap)),
              "top1_same_score": float(np.mean(top1)), **provenance(cfg)}
    print(json.dumps({k: v for k, v in result.items() if k != "config"}, indent=1))
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
