"""How far no-model expansions get on each plan, on VALID queries: the query plus the new words of each of the
top n result titles (n = 1, 2, 3, 5), one expansion per title, fused by each plan. Also the share of queries
with headroom (reward.headroom_only). Chooses what the warm start and the reward train for; never test.

``--labels`` adds the ceiling the warm start's label candidates (``distill.label_candidates``) aim the policy at:
the query plus the words its judged relevant items share and the catalogue rarely uses
(:class:`retrieval.CatalogVocabulary`), two words per expansion or one, ``prompt.num_expansions`` expansions.
These rows read the valid labels to measure how far such expansions could go; the warm start reads the
training split's. ``--shown K ...`` adds the same rows written only from the relevant items among the top K
results of the configured plan: how far a policy could get by copying the right words from a context of K titles.

    python experiments/probes/prf_headroom.py --config experiments/configs/cpu.toml --max-queries 1000
    python experiments/probes/prf_headroom.py --config experiments/configs/labels.toml --max-queries 300 \
        --titles 3 --labels --output runs/probe_label_headroom.json
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from grpo.distill import relevant_titles
from leser.config import load_config
from leser.evaluate import provenance
from leser.scoring import EngineScores, mean_scores, paired
from leser.runtime import Engines, build_plan, build_reward
from leser.queries import trainable_queries
from retrieval import CatalogVocabulary, load_dataset, term_expansions, title_expansions
from retrieval.plan import top_titles


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--config", default="experiments/configs/cpu.toml")
    ap.add_argument("--set", action="append", default=[])
    ap.add_argument("--max-queries", type=int, default=1000)
    ap.add_argument("--titles", type=int, nargs="+", default=[1, 2, 3, 5])
    ap.add_argument("--labels", action="store_true", help="add the label-term ceiling rows")
    ap.add_argument("--shown", type=int, nargs="*", default=[],
                    help="with --labels: also the label terms of the relevant items among the top K shown")
    ap.add_argument("--output", default="runs/probe_prf_headroom.json")
    args = ap.parse_args()
    cfg = load_config(args.config, args.set)
    dataset = load_dataset(cfg.data.path)
    qids = trainable_queries(cfg, dataset, "valid")[: args.max_queries]
    queries = [dataset.queries[q] for q in qids]
    engines = Engines(cfg, dataset)
    label_rows = {}
    if args.labels:
        vocabulary = CatalogVocabulary(list(dataset.product_texts))
        terms = [vocabulary.feedback_terms(q, relevant_titles(dataset, qid), cfg.distill.label_terms)
                 for qid, q in zip(qids, queries)]
        limits = (cfg.rules.max_words, cfg.rules.max_chars)
        label_rows = {f"labels{n}": [term_expansions(q, t, n, cfg.prompt.num_expansions, *limits)
                                     for q, t in zip(queries, terms)] for n in (2, 1)}
        if args.shown:
            shown_by = EngineScores(build_plan(cfg, dataset, cfg.engine.kind, engines), dataset, qids).originals
        for k in args.shown:
            shown = [[dataset.product_texts[row] for row in set(ranking[:k].tolist()) & set(dataset.relevant(qid))]
                     for qid, ranking in zip(qids, shown_by)]
            label_rows[f"shown{k}_labels2"] = [
                term_expansions(q, vocabulary.feedback_terms(q, titles, cfg.distill.label_terms), 2,
                                cfg.prompt.num_expansions, *limits) for q, titles in zip(queries, shown)]
    out = {"split": "valid", "num_queries": len(qids), **provenance(cfg), "plans": {}}
    for kind in ("dense", "bm25", "hybrid"):
        plan = build_plan(cfg, dataset, kind, engines)
        scores = EngineScores(plan, dataset, qids)
        contexts = [top_titles(dataset.product_texts, r, max(args.titles)) for r in scores.originals]
        result = {"original": mean_scores(scores.scores["original query"])}
        rows = {f"prf{n}": [title_expansions(q, c[:n], cfg.rules.max_words, cfg.rules.max_chars)
                            for q, c in zip(queries, contexts)] for n in args.titles}
        for label, expansions in {**rows, **label_rows}.items():
            scores.add(label, expansions)
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
