"""Which no-model lines could give the hybrid R@100? VALID queries, hybrid plan, no policy.

Families of candidate expansions, each scored as the plan fuses it (each line's BM25 list at the plan's weight):
- ``drop-one``: the query without one of its words (queries of 2+ words): relaxing a constraint;
- ``prf``: the query plus one shown title's new words (the top 1, 2, 3 titles);
For each family: the fixed system (its first 3 lines together) and the per-query oracle (the one line with the
best R@100 gain, ties broken by nDCG@10), an upper bound on what a policy choosing among the family could reach;
then a greedy oracle over both families together, adding up to 3 lines per query.
Never run on test.

    python experiments/probes/relaxation_headroom.py --max-queries 300
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from leser.config import load_config
from leser.evaluate import EngineScores, paired, per_query_scores
from leser.runtime import Engines, build_plan, trainable_queries
from retrieval import load_dataset, title_expansions
from retrieval.plan import top_titles


def drop_one(query: str) -> list[str]:
    words = query.split()
    return [" ".join(words[:i] + words[i + 1:]) for i in range(len(words))] if len(words) > 1 else []


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--config", default="experiments/configs/labels.toml")
    ap.add_argument("--max-queries", type=int, default=300)
    ap.add_argument("--output", default="runs/probe_relaxation.json")
    args = ap.parse_args()
    cfg = load_config(args.config, [])
    dataset = load_dataset(cfg.data.path)
    qids = trainable_queries(cfg, dataset, "valid")[: args.max_queries]
    plan = build_plan(cfg, dataset, "hybrid", Engines(cfg, dataset))
    scores = EngineScores(plan, dataset, qids)
    base = scores.scores["original query"]
    shown = [top_titles(dataset.product_texts, r, cfg.prompt.context_k) for r in scores.originals]
    limits = (cfg.rules.max_words, cfg.rules.max_chars)
    families = {"drop-one": [drop_one(dataset.queries[q]) for q in qids],
                "prf": [title_expansions(dataset.queries[q], t[:3], *limits) for q, t in zip(qids, shown)]}
    out = {"split": "valid", "num_queries": len(qids), "rows": {}}

    def report(label, system):
        diff = paired(system, base)
        out["rows"][label] = diff
        print(f"{label:28}", {m: (round(d["mean"], 4), round(d["ci_low"], 4), round(d["ci_high"], 4))
                              for m, d in diff.items()}, flush=True)

    for name, lines in families.items():
        report(f"{name}: first 3 lines", per_query_scores(dataset, qids, scores.fused([ls[:3] for ls in lines]),
                                                          scores.originals))
        width = max(len(ls) for ls in lines)
        per_line = []  # per_line[j]: the scores with line j alone (the original where a query has no line j)
        for j in range(width):
            single = [[ls[j]] if j < len(ls) else [] for ls in lines]
            per_line.append(per_query_scores(dataset, qids, scores.fused(single), scores.originals))
        key = np.stack([s["recall@100"] * 10 + s["ndcg@10"] for s in per_line])  # [width, n_queries]
        best = key.argmax(0)
        oracle = {m: np.stack([s[m] for s in per_line])[best, np.arange(len(qids))] for m in per_line[0]}
        report(f"{name}: oracle line", oracle)
    # The greedy oracle over both families: up to 3 lines per query, each round adding the line that raises
    # R@100 (then nDCG@10) most, and stopping where none does.
    pool = [d + f for d, f in zip(*families.values())]
    chosen: list[list[str]] = [[] for _ in qids]
    best = {m: v.copy() for m, v in base.items()}
    for _ in range(3):
        round_best = {m: v.copy() for m, v in best.items()}
        round_pick = list(chosen)
        for j in range(max(len(c) for c in pool)):
            trial = [ch + [c[j]] if j < len(c) and c[j] not in ch else ch for ch, c in zip(chosen, pool)]
            got = per_query_scores(dataset, qids, scores.fused(trial), scores.originals)
            better = got["recall@100"] * 10 + got["ndcg@10"] > round_best["recall@100"] * 10 + round_best["ndcg@10"]
            for i in np.flatnonzero(better):
                round_pick[i] = trial[i]
                for m in best:
                    round_best[m][i] = got[m][i]
        chosen, best = round_pick, round_best
        report(f"both: greedy oracle, up to {max(len(c) for c in chosen)} lines", best)
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
