"""Can lines be chosen without judgements? VALID queries, hybrid plan, no model.

``relaxation_headroom.py --wide`` found that the best 3 lines of a wide pool (PRF lines from the hybrid's top 20
titles, each engine's own titles, the query with a word dropped, the training split's nearest queries), chosen
with the labels, lift R@100 by +0.066. Here the pool's lines are ranked by scores a serving system could compute
(no labels), and the best 1-3 kept:
- ``line-query``: cosine of the line's and the query's embeddings (the line stays on the query's topic);
- ``items``: mean cosine of the query with the first 20 items of the line's BM25 list;
- ``new items``: the same over the first 20 of those items the original ranking lacks.
Pools: all of it; the 20 PRF lines; the training split's words plus PRF's top 3. Never run on test.

    python experiments/probes/line_choice.py --max-queries 300
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from relaxation_headroom import wide_pool

from leser.config import load_config
from leser.evaluate import provenance
from leser.scoring import EngineScores, paired, per_query_scores
from leser.runtime import Engines, build_plan
from leser.queries import trainable_queries
from retrieval import load_dataset

SELECTORS = ("line-query", "items", "new items")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--config", default="experiments/configs/labels.toml")
    ap.add_argument("--max-queries", type=int, default=300)
    ap.add_argument("--output", default="runs/probe_line_choice.json")
    args = ap.parse_args()
    cfg = load_config(args.config, [])
    dataset = load_dataset(cfg.data.path)
    qids = trainable_queries(cfg, dataset, "valid")[: args.max_queries]
    engines = Engines(cfg, dataset)
    plan = build_plan(cfg, dataset, "hybrid", engines)
    scores = EngineScores(plan, dataset, qids)
    wide, words, prf20 = wide_pool(cfg, dataset, engines, scores, qids)
    pools = {"all": wide, "prf top 20": prf20, "training words + prf top 3": [w + p[:3] for w, p in zip(words, prf20)]}
    dense = engines.get("dense")
    query_vectors = dense.encoder.encode([dataset.queries[q] for q in qids])
    out = {"split": "valid", "num_queries": len(qids), **provenance(cfg), "rows": {}}

    def line_scores(i: int, lines: list[str], found, vectors, selector: str) -> list[float]:
        if selector == "line-query":
            return [float(vectors[line] @ query_vectors[i]) for line in lines]
        top, values = set(scores.originals[i].tolist()), []
        for line in lines:
            ids = [x for x in found[line][0].tolist() if x >= 0 and (selector == "items" or x not in top)][:20]
            values.append(float((dense.embeddings[ids] @ query_vectors[i]).mean()) if ids else -1.0)
        return values

    for pool_name, pool in pools.items():
        texts = list(dict.fromkeys(line for lines in pool for line in lines))
        found = plan.search_expansions(texts)
        vectors = dict(zip(texts, dense.encoder.encode(texts)))
        for selector in SELECTORS:
            ranked = [[lines[j] for j in np.argsort(-np.array(line_scores(i, lines, found, vectors, selector)),
                                                    kind="stable")] for i, lines in enumerate(pool)]
            for n in (1, 2, 3):
                rankings = [plan.fuse(lists, [found[e] for e in lines[:n]])
                            for lists, lines in zip(scores.lists, ranked)]
                diff = paired(per_query_scores(dataset, qids, rankings, scores.originals),
                              scores.scores["original query"])
                label = f"{pool_name}: {selector}, best {n}"
                out["rows"][label] = diff
                print(f"{label:48}", {m: (round(diff[m]["mean"], 4), round(diff[m]["ci_low"], 4),
                                          round(diff[m]["ci_high"], 4)) for m in ("ndcg@10", "recall@100")}, flush=True)
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
