"""How much fixing the query's typos could give, on VALID queries of one plan.

Rows, each against the original query, overall and on the queries the speller changed (``retrieval.Speller``):
``spelled`` (the corrected query as the only expansion, weighted as three, which is what a policy that writes
it three times gets), ``prf3`` (the query plus each of the top 3 titles' new words) and ``prf3_spelled`` (the
same written on the corrected query). With ``--checkpoint``, also a speller before the policy: the eval's PRF
row and the policy, each on the query as typed and on the corrected query, their expansions fused with the
original (misspelt) query's lists. Never run on test.

    python experiments/probes/spelling_headroom.py --config experiments/configs/labels.toml --max-queries 300 \
        [--checkpoint runs/labels_decode/checkpoint-200] --output runs/probe_spelling.json
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from leser.config import load_config
from leser.evaluate import generate_expansions, provenance, pseudo_relevance_expansions
from leser.scoring import EngineScores, mean_scores, paired
from leser.runtime import Engines, build_plan
from leser.queries import trainable_queries
from retrieval import Speller, load_dataset, title_expansions
from retrieval.plan import top_titles


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--config", default="experiments/configs/labels.toml")
    ap.add_argument("--set", action="append", default=[])
    ap.add_argument("--max-queries", type=int, default=300)
    ap.add_argument("--checkpoint", help="also the policy at this folder, on the query as typed and corrected")
    ap.add_argument("--output", default="runs/probe_spelling.json")
    args = ap.parse_args()
    cfg = load_config(args.config, args.set)
    dataset = load_dataset(cfg.data.path)
    qids = trainable_queries(cfg, dataset, "valid")[: args.max_queries]
    queries = [dataset.queries[q] for q in qids]
    plan = build_plan(cfg, dataset, cfg.engine.kind, Engines(cfg, dataset))
    scores = EngineScores(plan, dataset, qids)
    shown = [top_titles(dataset.product_texts, r, cfg.prompt.context_k) for r in scores.originals]
    speller = Speller.for_plan(dataset.product_texts, plan)
    spelled = [speller.correct(q, titles) for q, titles in zip(queries, shown)]
    changed = np.array([s != q for s, q in zip(spelled, queries)])
    limits = (cfg.rules.max_words, cfg.rules.max_chars)
    rows = {
        "spelled": [[s] * cfg.prompt.num_expansions if s != q else [] for s, q in zip(spelled, queries)],
        "prf3": [title_expansions(q, t[:3], *limits) for q, t in zip(queries, shown)],
        "prf3_spelled": [title_expansions(s, t[:3], *limits) for s, t in zip(spelled, shown)],
    }
    if args.checkpoint:
        rows.update({
            "PRF": pseudo_relevance_expansions(cfg, queries, shown).expansions,
            "PRF, corrected query": pseudo_relevance_expansions(cfg, spelled, shown).expansions,
            "policy": generate_expansions(args.checkpoint, cfg, queries, shown).expansions,
            "policy, corrected query": generate_expansions(args.checkpoint, cfg, spelled, shown).expansions})
    original = scores.scores["original query"]
    out = {"split": "valid", "plan": plan.describe(), "checkpoint": args.checkpoint, "num_queries": len(qids),
           "num_changed": int(changed.sum()), "examples": [[q, s] for q, s in zip(queries, spelled) if s != q][:40],
           "original": mean_scores(original),
           "original_on_changed": mean_scores({k: v[changed] for k, v in original.items()}), **provenance(cfg),
           "rows": {}}
    for label, expansions in rows.items():
        scores.add(label, expansions)
        row = scores.scores[label]
        out["rows"][label] = {"vs_original": paired(row, original),
                              "vs_original_on_changed": paired({k: v[changed] for k, v in row.items()},
                                                               {k: v[changed] for k, v in original.items()}),
                              "examples_on_changed": [[q, e] for q, e, c in zip(queries, expansions, changed)
                                                      if c][:10]}
        print(label, {m: round(d["mean"], 4) for m, d in out["rows"][label]["vs_original"].items()},
              "changed only:", {m: round(d["mean"], 4)
                                for m, d in out["rows"][label]["vs_original_on_changed"].items()}, flush=True)
    print(f"{int(changed.sum())} of {len(qids)} queries changed by the speller")
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
