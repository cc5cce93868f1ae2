"""How the original query's list and the expansions' lists should be fused: RRF's weight and k.

Generates each policy's greedy expansions for the queries of one split once (cached as JSON in the output
directory), then scores the fused ranking for every (rrf_k, original weight), so the fusion is chosen on
held-out *valid* queries and never on test. Writes ``fusion_sweep.json`` and a markdown table.

    LESER_DATA=../shared/data/home_depot python experiments/fusion_sweep.py \
        --models zero-shot= trained=runs/cpu/checkpoint-32 --split valid --max-queries 200 --rrf-ks 10 60

A model path of ``@title1`` (``leser.evaluate.PSEUDO_RELEVANCE``) is no model: the query plus the new words
of its top result's title, one expansion (pseudo-relevance feedback as a query; ``retrieval.title_expansions``).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

from leser.config import load_config
from leser.evaluate import (PSEUDO_RELEVANCE, fused_rankings, generate_expansions, original_row,
                            pseudo_relevance_expansions, score_rankings)
from leser.runtime import build_engine, trainable_queries
from retrieval import load_dataset


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default="experiments/configs/cpu.toml")
    ap.add_argument("--models", nargs="+", default=["zero-shot="],
                    help="label=path; an empty path is the base policy of the config")
    ap.add_argument("--split", default="valid")
    ap.add_argument("--max-queries", type=int, default=200)
    ap.add_argument("--weights", type=float, nargs="+", default=[1, 1.5, 2, 3, 4, 6, 8])
    ap.add_argument("--rrf-ks", type=int, nargs="+", default=None, help="default: the config's reward.rrf_k")
    ap.add_argument("--output-dir", default="runs/fusion_sweep")
    args = ap.parse_args()

    cfg = load_config(args.config)
    out = Path(args.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    dataset = load_dataset(cfg.data.path)
    qids = trainable_queries(cfg, dataset, args.split)[: args.max_queries]
    engine = build_engine(cfg, dataset, "dense")
    base_row, original = original_row("original query (dense)", dataset, engine, qids)
    print(f"{len(qids)} {args.split} queries; original: {json.dumps(base_row.metrics)}")

    results = {"split": args.split, "num_queries": len(qids), "original": base_row.metrics, "policies": {}}
    for item in args.models:
        label, _, path = item.partition("=")
        cache = out / f"expansions_{label}_{args.split}_{len(qids)}.json"
        if path == PSEUDO_RELEVANCE:
            expansions = pseudo_relevance_expansions(cfg, dataset, qids, original[0]).expansions
        elif cache.exists():
            expansions = json.loads(cache.read_text())["expansions"]
        else:
            gen = generate_expansions(path or cfg.policy.model, cfg, dataset, qids, original[0])
            expansions = gen.expansions
            cache.write_text(json.dumps({"model": path, "qids": qids, "expansions": expansions,
                                         "violations": gen.violations, "seconds": gen.seconds}))
        by_fusion = {}
        for rrf_k in args.rrf_ks or [cfg.reward.rrf_k]:
            for w in args.weights:
                reward_cfg = dataclasses.replace(cfg.reward, original_weight=w, rrf_k=rrf_k)
                fused = fused_rankings(expansions, reward_cfg, engine, original)
                by_fusion.setdefault(str(rrf_k), {})[str(w)] = score_rankings(dataset, qids, fused, list(original[0]))
        results["policies"][label] = by_fusion

    lines = ["| policy | rrf_k | original weight | nDCG@10 | R@100 | coverage + |", "|---|---|---|---|---|---|",
             f"| original query | | | {base_row.metrics['ndcg@10']:.4f} | {base_row.metrics['recall@100']:.4f} | |"]
    for label, by_fusion in results["policies"].items():
        for rrf_k, by_weight in by_fusion.items():
            for w, m in by_weight.items():
                lines.append(f"| {label} | {rrf_k} | {w} | {m['ndcg@10']:.4f} | {m['recall@100']:.4f} | "
                             f"{m['coverage_increment']:+.4f} |")
    table = "\n".join(lines)
    (out / "fusion_sweep.json").write_text(json.dumps(results, indent=1))
    (out / "fusion_sweep.md").write_text(table + "\n")
    print(table)


if __name__ == "__main__":
    main()
