"""Would one expanded lexical query give more R@100 than a list per expansion? VALID queries, hybrid plan.

Classic query expansion (RM3 and kin) appends the new words to the query and runs one query; the plan runs each
expansion as its own BM25 list and fuses the lists by RRF, so an item must top an expansion's list to enter the
fused top 100. For each source of lines (the policy's, read from an eval's ``expansions.jsonl``, and the top-3
-title PRF lines) this scores:
- ``lists``: the plan as it is;
- ``+ expanded w``: one more BM25 list, the query repeated ``r`` times then every new word of the lines, at weight w;
- ``expanded replaces bm25(q)``: that list in place of the query's own BM25 list.
Never run on test.

    python experiments/probes/expanded_query.py --expansions runs/eval_spell_train_valid/expansions.jsonl
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from leser.config import load_config
from leser.evaluate import provenance
from leser.scoring import EngineScores, paired, per_query_scores
from leser.runtime import Engines, build_plan
from retrieval import load_dataset, title_expansions
from retrieval.fusion import fuse
from retrieval.plan import top_titles


def expanded_query(query: str, lines: list[str], repeat: int) -> str:
    """The query ``repeat`` times, then each word of the lines the query lacks, once."""
    seen = {w.casefold() for w in query.split()}
    new = []
    for line in lines:
        for w in line.split():
            if w.casefold() not in seen:
                seen.add(w.casefold())
                new.append(w)
    return " ".join([query] * repeat + new)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--config", default="experiments/configs/labels.toml")
    ap.add_argument("--expansions", required=True)
    ap.add_argument("--system", default="step", help="the policy row's name starts with this")
    ap.add_argument("--output", default="runs/probe_expanded_query.json")
    args = ap.parse_args()
    cfg = load_config(args.config, [])
    dataset = load_dataset(cfg.data.path)
    rows = [json.loads(line) for line in Path(args.expansions).read_text().splitlines()]
    policy = {r["query_id"]: r["expansions"] for r in rows if r["system"].startswith(args.system)}
    qids = list(policy)
    plan = build_plan(cfg, dataset, "hybrid", Engines(cfg, dataset))
    scores = EngineScores(plan, dataset, qids)
    base = scores.scores["original query"]
    shown = [top_titles(dataset.product_texts, r, cfg.prompt.context_k) for r in scores.originals]
    limits = (cfg.rules.max_words, cfg.rules.max_chars)
    sources = {"policy": [policy[q] for q in qids],
               "prf3": [title_expansions(dataset.queries[q], t[:3], *limits) for q, t in zip(qids, shown)]}
    bm25 = plan.expansion_engine
    out = {"split": "valid", "num_queries": len(qids), **provenance(cfg), "expansions": args.expansions, "rows": {}}

    def report(label: str, rankings) -> None:
        diff = paired(per_query_scores(dataset, qids, rankings, scores.originals), base)
        out["rows"][label] = diff
        print(f"{label:40}", {m: (round(d["mean"], 4), round(d["ci_low"], 4), round(d["ci_high"], 4))
                              for m, d in diff.items() if m in ("ndcg@10", "recall@100")}, flush=True)

    for name, lines in sources.items():
        report(f"{name}: lists", scores.fused(lines))
        for repeat in (1, 2):
            texts = [expanded_query(dataset.queries[q], ls, repeat) for q, ls in zip(qids, lines)]
            found = bm25.search(texts, plan.depth)[0]
            for weight in (0.5, 1.0):
                rankings = [fuse([i for i, _ in lists] + [found[j]], k=plan.depth, weights=[1.0, 1.0, weight],
                                 rrf_k=plan.fusion.rrf_k) for j, lists in enumerate(scores.lists)]
                report(f"{name}: + expanded x{repeat} at {weight}", rankings)
            rankings = [fuse([lists[0][0], found[j]], k=plan.depth, rrf_k=plan.fusion.rrf_k)
                        for j, lists in enumerate(scores.lists)]
            report(f"{name}: expanded x{repeat} replaces bm25(q)", rankings)
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
