"""Would another way of fusing the expansions give the policy's lines more R@100? VALID queries, hybrid plan.

Reads a policy's expansions from an eval's ``expansions.jsonl`` (``--system``: the row's name prefix), and scores
them, the top-3-title PRF lines and mixes of the two under variants of the hybrid plan:
- ``bm25 .5``: the plan as it is (each expansion's BM25 list at weight 0.5);
- ``+ dense W``: each expansion also searched by the dense retriever, its list at weight W;
- ``novelty``: each expansion's weight scaled by the share of its BM25 top 100 not in the query's, so a
  near-copy of the query does not weight the lexical side up.
Never run on test.

    python experiments/probes/plan_variants.py --expansions runs/eval_decode_valid/expansions.jsonl --system step
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from leser.config import load_config
from leser.scoring import EngineScores, paired, per_query_scores
from leser.runtime import Engines, build_plan
from retrieval import load_dataset, title_expansions
from retrieval.fusion import fuse
from retrieval.plan import top_titles


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--config", default="experiments/configs/labels.toml")
    ap.add_argument("--expansions", required=True)
    ap.add_argument("--system", default="step", help="the policy row's name starts with this")
    ap.add_argument("--output", default="runs/probe_plan_variants.json")
    args = ap.parse_args()
    cfg = load_config(args.config, [])
    dataset = load_dataset(cfg.data.path)
    rows = [json.loads(line) for line in Path(args.expansions).read_text().splitlines()]
    policy = {r["query_id"]: r["expansions"] for r in rows if r["system"].startswith(args.system)}
    qids = list(policy)
    plan = build_plan(cfg, dataset, "hybrid", Engines(cfg, dataset))
    scores = EngineScores(plan, dataset, qids)
    shown = [top_titles(dataset.product_texts, r, cfg.prompt.context_k) for r in scores.originals]
    limits = (cfg.rules.max_words, cfg.rules.max_chars)
    prf3 = [title_expansions(dataset.queries[q], t[:3], *limits) for q, t in zip(qids, shown)]
    lines = [policy[q] for q in qids]
    systems = {"policy": lines, "prf3": prf3, "policy 1 + prf 2": [p[:1] + f[:2] for p, f in zip(lines, prf3)],
               "policy 2 + prf 1": [p[:2] + f[:1] for p, f in zip(lines, prf3)]}
    dense, bm25 = plan.original_engines[0], plan.expansion_engine
    out = {"split": "valid", "num_queries": len(qids), "expansions": args.expansions, "rows": {}}

    def score(label: str, expansions: list[list[str]], dense_weight: float = 0.0, novelty: bool = False) -> None:
        texts = list(dict.fromkeys(e for es in expansions for e in es))
        lexical = dict(zip(texts, bm25.search(texts, plan.depth)[0]))
        semantic = dict(zip(texts, dense.search(texts, plan.depth)[0])) if dense_weight else {}
        rankings = []
        for lists, es in zip(scores.lists, expansions):
            ids, weights = [i for i, _ in lists], [plan.fusion.original_weight] * len(lists)
            query_top = set(lists[1][0].tolist())  # the query's own BM25 list
            for e in es:
                new = 1 - len(query_top & set(lexical[e].tolist())) / plan.depth if novelty else 1.0
                ids.append(lexical[e]), weights.append(max(plan.fusion.expansion_weight * new, 1e-6))
                if dense_weight:
                    ids.append(semantic[e]), weights.append(dense_weight)
            rankings.append(fuse(ids, k=plan.depth, weights=weights, rrf_k=plan.fusion.rrf_k))
        diff = paired(per_query_scores(dataset, qids, rankings, scores.originals), scores.scores["original query"])
        out["rows"][label] = diff
        print(f"{label:32}", {m: (round(d["mean"], 4), round(d["ci_low"], 4), round(d["ci_high"], 4))
                              for m, d in diff.items()}, flush=True)

    for name, expansions in systems.items():
        score(f"{name}: bm25 .5", expansions)
    for name in ("policy", "prf3"):
        for weight in (0.25, 0.5):
            score(f"{name}: bm25 .5 + dense {weight}", systems[name], dense_weight=weight)
        score(f"{name}: novelty", systems[name], novelty=True)
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
