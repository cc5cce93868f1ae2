"""How far expansions could get from the training split's memory, on VALID queries: no model, no test.

The previous probe (prf_headroom.py --shown) found R@100's headroom in relevant items ranked below 50, whose
words no context of result titles shows. A platform has another source: its past queries and what shoppers
found for them. Here that is the training split. For each valid query, its nearest training queries under the
dense encoder give:

- ``nn_queries``: the nearest neighbours' own texts as the expansions (query rewriting from a log);
- ``nn_titles``: the query plus the new words of a relevant title of each nearest neighbour, one per expansion;
- ``nn{m}_labels2``: the query plus the words the m nearest neighbours' relevant items share (as
  ``distill.label_candidates`` reads a query's own relevant items), two words per expansion.

    python experiments/probes/neighbour_headroom.py --config experiments/configs/labels.toml --max-queries 300
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from grpo.distill import relevant_titles
from leser.config import load_config
from leser.evaluate import provenance
from leser.scoring import ORIGINAL, EngineScores, mean_scores, paired
from leser.runtime import Engines, build_plan
from leser.queries import trainable_queries
from retrieval import CatalogVocabulary, load_dataset, term_expansions, title_expansions


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--config", default="experiments/configs/labels.toml")
    ap.add_argument("--set", action="append", default=[])
    ap.add_argument("--max-queries", type=int, default=300)
    ap.add_argument("--neighbours", type=int, nargs="+", default=[3, 5, 10])
    ap.add_argument("--plans", nargs="+", default=["hybrid", "bm25", "dense"])
    ap.add_argument("--output", default="runs/probe_neighbour_headroom.json")
    args = ap.parse_args()
    cfg = load_config(args.config, args.set)
    if cfg.reward.relevance != "labels":
        raise SystemExit("the neighbours' words come from their relevant items: use a config with relevance = labels")
    dataset = load_dataset(cfg.data.path)
    qids = trainable_queries(cfg, dataset, "valid")[: args.max_queries]
    queries = [dataset.queries[q] for q in qids]
    train = trainable_queries(cfg, dataset, "train")
    engines = Engines(cfg, dataset)
    encoder = engines.get("dense").encoder
    train_vecs = encoder.encode([dataset.queries[q] for q in train])
    query_vecs = encoder.encode(queries)
    order = torch.topk(query_vecs @ train_vecs.T, max(args.neighbours), dim=1).indices.tolist()
    neighbours = [[train[j] for j in row] for row in order]

    train_relevant = {row for q in train for row in dataset.relevant(q)}
    valid_relevant = [set(dataset.relevant(q)) for q in qids]
    covered = sum(len(r & train_relevant) for r in valid_relevant) / max(1, sum(map(len, valid_relevant)))
    near_covered = sum(len(r & {row for n in nn for row in dataset.relevant(n)})
                       for r, nn in zip(valid_relevant, neighbours)) / max(1, sum(map(len, valid_relevant)))
    print(f"valid relevant items also relevant to some train query: {covered:.3f}; "
          f"to one of its {max(args.neighbours)} nearest: {near_covered:.3f}", flush=True)

    vocabulary = CatalogVocabulary(list(dataset.product_texts))
    limits = (cfg.rules.max_words, cfg.rules.max_chars)
    n_exp = cfg.prompt.num_expansions
    rows = {"nn_queries": [[dataset.queries[n] for n in nn[:n_exp]] for nn in neighbours],
            "nn_titles": [title_expansions(q, [relevant_titles(dataset, n)[0] for n in nn[:n_exp]], *limits)
                          for q, nn in zip(queries, neighbours)]}
    for m in args.neighbours:
        titles = [[t for n in nn[:m] for t in relevant_titles(dataset, n)] for nn in neighbours]
        rows[f"nn{m}_labels2"] = [
            term_expansions(q, vocabulary.feedback_terms(q, ts, cfg.distill.label_terms), 2, n_exp, *limits)
            for q, ts in zip(queries, titles)]
    out = {"split": "valid", "num_queries": len(qids), **provenance(cfg), "train_coverage": covered,
           "nearest_coverage": near_covered, "max_neighbours": max(args.neighbours), "examples": {}, "plans": {}}
    for i, query in enumerate(queries[:5]):
        out["examples"][query] = {k: v[i] for k, v in rows.items()}
    for kind in args.plans:
        scores = EngineScores(build_plan(cfg, dataset, kind, engines), dataset, qids)
        result = {"original": mean_scores(scores.scores[ORIGINAL])}
        for label, expansions in rows.items():
            scores.add(label, expansions)
            result[label] = {"metrics": mean_scores(scores.scores[label]),
                             "vs_original": paired(scores.scores[label], scores.scores[ORIGINAL])}
        out["plans"][kind] = result
        print(kind, json.dumps({k: v.get("vs_original", v) for k, v in result.items()}), flush=True)
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
