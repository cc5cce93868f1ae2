"""Go/no-go for the judge reward: can the relevance judge choose lines? VALID queries, hybrid plan, no policy.

The wide line pool of ``relaxation_headroom.py --wide`` (~40 lines a query: PRF from the hybrid's top 20 titles,
each engine's own titles, the query with a word dropped, the training split's nearest queries) holds lines that
lift R@100 by +0.066 when the labels choose them (``2026-11-29_line_pool``); no label-free score chose better
than +0.023. Here each query's lines are chosen greedily (up to 3, stopping when nothing improves) by the total
of a reward as training computes it (:class:`reward.SearchReward`, fused list, deep term):
- ``judge``: the judge's reward, which reads no labels (``reward.relevance = "judge"``);
- ``labels``: the labels reward (the ceiling, for comparison; it reads the valid judgements).
If the judge's choice is not well above +0.023 R@100, no reward built on it will teach a policy more. Never
run on test.

    python experiments/probes/judge_line_choice.py --max-queries 300 --set judge.model=runs/judge
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

import numpy as np
from relaxation_headroom import wide_pool

from leser.config import load_config
from leser.evaluate import provenance
from leser.scoring import EngineScores, paired, per_query_scores
from leser.judge import load_judge
from leser.runtime import Engines, build_plan
from leser.queries import trainable_queries
from retrieval import load_dataset
from reward import SearchReward
from reward.line_choice import greedy_lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--config", default="experiments/configs/labels.toml")
    ap.add_argument("--set", action="append", default=[], help="config override, e.g. judge.model=runs/judge")
    ap.add_argument("--max-queries", type=int, default=300)
    ap.add_argument("--output", default="runs/probe_judge_line_choice.json")
    args = ap.parse_args()
    cfg = load_config(args.config, args.set)
    dataset = load_dataset(cfg.data.path)
    qids = trainable_queries(cfg, dataset, "valid")[: args.max_queries]
    engines = Engines(cfg, dataset)
    plan = build_plan(cfg, dataset, "hybrid", engines)
    scores = EngineScores(plan, dataset, qids)
    wide, words, prf20 = wide_pool(cfg, dataset, engines, scores, qids)
    pools = {"all": wide, "training words + prf top 3": [w + p[:3] for w, p in zip(words, prf20)]}
    judge = load_judge(cfg)
    rewards = {"judge": SearchReward(dataset, plan, dataclasses.replace(cfg.reward, relevance="judge",
                                                                        headroom_only=False), cfg.rules, judge=judge),
               "labels": SearchReward(dataset, plan, dataclasses.replace(cfg.reward, relevance="labels"), cfg.rules)}
    out = {"split": "valid", "num_queries": len(qids), "judge": cfg.judge.folder, **provenance(cfg), "rows": {}}
    for pool_name, pool in pools.items():
        for name, reward in rewards.items():
            start, pairs = time.perf_counter(), judge.pairs_scored
            chosen = greedy_lines(reward, qids, pool, most=3)
            diff = paired(per_query_scores(dataset, qids, scores.fused(chosen), scores.originals),
                          scores.scores["original query"])
            label = f"{pool_name}: chosen by the {name} reward"
            out["rows"][label] = {**diff, "mean_lines": float(np.mean([len(c) for c in chosen])),
                                  "seconds": time.perf_counter() - start, "judge_pairs": judge.pairs_scored - pairs}
            print(f"{label:50}", {m: (round(d["mean"], 4), round(d["ci_low"], 4), round(d["ci_high"], 4))
                                  for m, d in diff.items()}, f"{out['rows'][label]['seconds']:.0f} s", flush=True)
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
