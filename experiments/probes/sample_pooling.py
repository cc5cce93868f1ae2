"""Does pooling several sampled completions per query reach deeper than one greedy completion?

A trained policy's greedy lines lift nDCG@10 but not R@100 (experiments/RESULTS.md). Here each query gets ``N``
completions sampled at ``temperature``; every usable line of every sample joins the fusion, each weighted
``expansion_weight * num_expansions / lines`` so the expansions' total weight equals the greedy row's three lines.
A line that several samples write is fused once per sample, so what the samples agree on weighs more.
Rows: greedy (as ``make eval``), pooled samples, pseudo-relevance; each against the plan's original query on the
same queries, with paired 95% intervals.

    python experiments/probes/sample_pooling.py --config experiments/configs/labels.toml \
        --checkpoint runs/labels_repro/checkpoint-200 --split valid --max-queries 300 --samples 8
"""
from __future__ import annotations

import argparse
import json
import time

import torch

from leser.config import load_config
from leser.evaluate import pseudo_relevance_expansions
from leser.scoring import PSEUDO_RELEVANCE, EngineScores, paired, per_query_scores
from leser.runtime import build_plan
from leser.queries import trainable_queries
from policy import build_prompt, expand_queries, load_policy, parse_completion, sample_groups
from retrieval import load_dataset
from retrieval.fusion import fuse
from retrieval.plan import top_titles
from reward import usable


def pooled_rankings(scores: EngineScores, samples: list[list[list[str]]], lines_per_sample: int) -> list[torch.Tensor]:
    """Each query's ranking with every sample's lines fused, the expansions' total weight held at
    ``lines_per_sample`` lines' worth."""
    plan = scores.plan
    found = plan.search_expansions([line for per_query in samples for s in per_query for line in s])
    out = []
    for original, per_query in zip(scores.lists, samples):
        lines = [line for s in per_query for line in s]
        if not lines:
            out.append(plan.original_ranking(original))
            continue
        weight = plan.fusion.expansion_weight * lines_per_sample / len(lines)
        weights = [plan.fusion.original_weight] * len(original) + [weight] * len(lines)
        out.append(fuse([ids for ids, _ in original] + [found[line][0] for line in lines], k=plan.depth,
                        weights=weights, rrf_k=plan.fusion.rrf_k))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="experiments/configs/labels.toml")
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--split", default="valid")
    parser.add_argument("--max-queries", type=int, default=300)
    parser.add_argument("--samples", type=int, default=8)
    parser.add_argument("--temperature", type=float, nargs="+", default=[1.0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output")
    args = parser.parse_args()
    cfg = load_config(args.config)
    dataset = load_dataset(cfg.data.path)
    qids = trainable_queries(cfg, dataset, args.split)[: args.max_queries]
    queries = [dataset.queries[q] for q in qids]
    scores = EngineScores(build_plan(cfg, dataset), dataset, qids)
    contexts = [top_titles(dataset.product_texts, r, cfg.prompt.context_k) for r in scores.originals]
    model, tokenizer = load_policy(args.checkpoint, dtype=cfg.policy.dtype)
    rows: dict[str, list[list[str]] | list[list[list[str]]]] = {}
    rows[PSEUDO_RELEVANCE] = pseudo_relevance_expansions(cfg, queries, contexts).expansions
    rows["greedy"] = [usable(p, q, cfg.rules) for p, q in zip(
        expand_queries(model, tokenizer, queries, contexts, cfg.prompt, temperature=0.0, batch_size=16,
                       distinct_lines=True), queries)]
    prompts = [build_prompt(tokenizer, q, c, cfg.prompt) for q, c in zip(queries, contexts)]
    report = {"checkpoint": args.checkpoint, "split": args.split, "num_queries": len(qids), "samples": args.samples,
              "plan": scores.plan.describe(), "rows": {}}
    for name in (PSEUDO_RELEVANCE, "greedy"):
        scores.add(name, rows[name])
    for temperature in args.temperature:
        torch.manual_seed(args.seed)
        start, samples = time.perf_counter(), []
        for i in range(0, len(prompts), 4):
            rollout = sample_groups(model, tokenizer, prompts[i:i + 4], args.samples, temperature=temperature)
            texts = rollout.texts
            for j, query in enumerate(queries[i:i + 4]):
                samples.append([usable(parse_completion(t, cfg.prompt.num_expansions), query, cfg.rules)
                                for t in texts[j * args.samples:(j + 1) * args.samples]])
        name = f"pooled {args.samples} samples, T {temperature}"
        print(f"{name}: sampled in {time.perf_counter() - start:.0f} s", flush=True)
        ranked = pooled_rankings(scores, samples, cfg.prompt.num_expansions)
        scores.scores[name] = per_query_scores(dataset, qids, ranked, scores.originals)
    for name, per_query in scores.scores.items():
        entry = {"mean": {m: float(v.mean()) for m, v in per_query.items()}}
        if name != "original query":
            entry["vs_original"] = paired(per_query, scores.scores["original query"])
            entry["vs_pseudo_relevance"] = paired(per_query, scores.scores[PSEUDO_RELEVANCE])
            d = entry["vs_original"]
            print(f"{name:40s} nDCG@10 {d['ndcg@10']['mean']:+.4f} [{d['ndcg@10']['ci_low']:+.4f}, "
                  f"{d['ndcg@10']['ci_high']:+.4f}]  R@100 {d['recall@100']['mean']:+.4f} "
                  f"[{d['recall@100']['ci_low']:+.4f}, {d['recall@100']['ci_high']:+.4f}]")
        report["rows"][name] = entry
    if args.output:
        with open(args.output, "w") as f:
            json.dump(report, f, indent=2)


if __name__ == "__main__":
    main()
