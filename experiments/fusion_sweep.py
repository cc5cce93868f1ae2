"""How a plan's lists should be fused: the original's weight, the expansions' weight and RRF's k, on VALID.

Each policy's greedy expansions are generated once (the context is the configured plan's, as in ``make eval``),
then the fused ranking is scored for every fusion setting of the plan, so the fusion is chosen on held-out
*valid* queries and never on test. Writes ``fusion_sweep.json`` and a markdown table to ``--output-dir``.

    python experiments/fusion_sweep.py --config experiments/configs/hybrid.toml --plan hybrid \
        --models trained=runs/hybrid_grpo/checkpoint-150 --max-queries 300 --expansion-weights 0.25 0.5 1

``--pseudo-relevance`` adds the no-model row (the query plus its top result's new words).
"""
from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
from pathlib import Path

from leser.config import load_config
from leser.evaluate import context_depth, generate_expansions, provenance, pseudo_relevance_expansions
from leser.scoring import ORIGINAL, PSEUDO_RELEVANCE, EngineScores, mean_scores
from leser.runtime import Engines, build_plan
from leser.queries import trainable_queries
from retrieval import load_dataset
from retrieval.plan import top_titles


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--config", default="experiments/configs/hybrid.toml")
    ap.add_argument("--set", action="append", default=[])
    ap.add_argument("--plan", default=None, help="the plan to fuse with (default: [engine] kind)")
    ap.add_argument("--models", nargs="*", default=[], help="label=path of each policy")
    ap.add_argument("--pseudo-relevance", action="store_true")
    ap.add_argument("--split", default="valid")
    ap.add_argument("--max-queries", type=int, default=300)
    ap.add_argument("--original-weights", type=float, nargs="+", default=None)
    ap.add_argument("--expansion-weights", type=float, nargs="+", default=None)
    ap.add_argument("--rrf-ks", type=int, nargs="+", default=None)
    ap.add_argument("--output-dir", default="runs/fusion_sweep")
    args = ap.parse_args()
    if args.split == "test":
        raise SystemExit("fusion is chosen on valid (or train) queries, never on test")
    cfg = load_config(args.config, args.set)
    dataset = load_dataset(cfg.data.path)
    qids = trainable_queries(cfg, dataset, args.split)[: args.max_queries]
    queries = [dataset.queries[q] for q in qids]
    engines = Engines(cfg, dataset)
    context_plan = build_plan(cfg, dataset, engines=engines)
    depth = context_depth(cfg, [item.partition("=")[2] for item in args.models])
    contexts = [top_titles(dataset.product_texts, r, depth) for r in context_plan.rank(queries)]
    policies = {PSEUDO_RELEVANCE: pseudo_relevance_expansions(cfg, queries, contexts)} if args.pseudo_relevance else {}
    for item in args.models:
        label, _, path = item.partition("=")
        policies[label] = generate_expansions(path or None, cfg, queries, contexts)

    plan = build_plan(cfg, dataset, args.plan, engines)
    base = plan.fusion
    grid = itertools.product(args.original_weights or [base.original_weight],
                             args.expansion_weights or [base.expansion_weight], args.rrf_ks or [base.rrf_k])
    results = {"split": args.split, "num_queries": len(qids), "plan": plan.kind, **provenance(cfg), "cells": []}
    lines = ["| policy | original w | expansion w | rrf_k | nDCG@10 | R@100 | nDCG@10 - original | R@100 - original |",
             "|---|---|---|---|---|---|---|---|"]
    for w_o, w_e, k in grid:
        plan.fusion = dataclasses.replace(base, original_weight=w_o, expansion_weight=w_e, rrf_k=k)
        scores = EngineScores(plan, dataset, qids)
        original = mean_scores(scores.scores[ORIGINAL])
        for label, out in policies.items():
            scores.add(label, out.expansions)
            m = mean_scores(scores.scores[label])
            results["cells"].append({"policy": label, "fusion": dataclasses.asdict(plan.fusion), "metrics": m,
                                     "original": original})
            gain = {name: m[name] - original[name] for name in ("ndcg@10", "recall@100")}
            lines.append(f"| {label} | {w_o:g} | {w_e:g} | {k} | {m['ndcg@10']:.4f} | {m['recall@100']:.4f} | "
                         f"{gain['ndcg@10']:+.4f} | {gain['recall@100']:+.4f} |")
    out = Path(args.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "fusion_sweep.json").write_text(json.dumps(results, indent=1))
    (out / "fusion_sweep.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
