"""How far no-model expansions get on each plan, on VALID queries: the query plus the new words of each of the
top n result titles (n = 1, 2, 3, 5), one expansion per title, fused by each plan. Also the share of queries
with headroom (reward.headroom_only). Chooses what the warm start and the reward train for; never test.

    python experiments/probes/prf_headroom.py --config experiments/configs/cpu.toml --max-queries 1000
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from leser.config import load_config
from leser.evaluate import EngineScores, mean_scores, paired, provenance
from leser.runtime import Engines, build_plan, build_reward, trainable_queries
from retrieval import load_dataset, title_expansions
from retrieval.plan import top_titles


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--config", default="experiments/configs/cpu.toml")
    ap.add_argument("--set", action="append", default=[])
    ap.add_argument("--max-queries", type=int, default=1000)
    ap.add_argument("--titles", type=int, nargs="+", default=[1, 2, 3, 5])
    ap.add_argument("--output", default="runs/probe_prf_headroom.json")
    args = ap.parse_args()
    cfg = load_config(args.config, args.set)
    dataset = load_dataset(cfg.data.path)
    qids = trainable_queries(cfg, dataset, "valid")[: args.max_queries]
    queries = [dataset.queries[q] for q in qids]
    engines = Engines(cfg, dataset)
    out = {"split": "valid", "num_queries": len(qids), **provenance(cfg), "plans": {}}
    for kind in ("dense", "bm25", "hybrid"):
        plan = build_plan(cfg, dataset, kind, engines)
        scores = EngineScores(plan, dataset, qids)
        contexts = [top_titles(dataset.product_texts, r, max(args.titles)) for r in scores.originals]
        result = {"original": mean_scores(scores.scores["original query"])}
        for n in args.titles:
            label = f"prf{n}"
            scores.add(label, [title_expansions(q, c[:n], cfg.rules.max_words, cfg.rules.max_chars)
                               for q, c in zip(queries, contexts)])
            result[label] = {"metrics": mean_scores(scores.scores[label]),
                             "vs_original": paired(scores.scores[label], scores.scores["original query"])}
        reward = build_reward(cfg, dataset, plan)
        result["headroom_share"] = len(reward.with_headroom(qids)) / len(qids)
        out["plans"][kind] = result
        print(kind, json.dumps({k: (v["metrics"] if "metrics" in v else v) if isinstance(v, dict) else v
                                for k, v in result.items()}, indent=None), flush=True)
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
