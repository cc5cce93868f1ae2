"""Which no-model lines could give the hybrid R@100? VALID queries, hybrid plan, no policy.

Families of candidate expansions, each scored as the plan fuses it (each line's BM25 list at the plan's weight):
- ``drop-one``: the query without one of its words (queries of 2+ words): relaxing a constraint;
- ``prf``: the query plus one shown title's new words (the top 1, 2, 3 titles);
For each family: the fixed system (its first 3 lines together) and the per-query oracle (the one line with the
best R@100 gain, ties broken by nDCG@10), an upper bound on what a policy choosing among the family could reach;
then a greedy oracle over all families together, adding up to 3 lines per query.
``--wide`` adds every other source of words a prompt could show, to bound what any line-writing policy fed
from them could reach: PRF lines from the hybrid's titles 4-20, from the top 3 titles only BM25 (only the dense
retriever) finds, and from the training split (the 5 nearest training queries' relevant items' shared words,
2 an expansion, and one relevant title of each of the 3 nearest).
Never run on test.

    python experiments/probes/relaxation_headroom.py --max-queries 300 [--wide]
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from grpo.distill import relevant_titles
from leser.config import load_config
from leser.evaluate import provenance
from leser.scoring import EngineScores, paired, per_query_scores
from leser.runtime import Engines, build_plan
from leser.queries import trainable_queries
from retrieval import CatalogVocabulary, load_dataset, term_expansions, title_expansions
from retrieval.plan import top_titles


def drop_one(query: str) -> list[str]:
    words = query.split()
    return [" ".join(words[:i] + words[i + 1:]) for i in range(len(words))] if len(words) > 1 else []


def engine_only_titles(dataset, lists, k: int = 3) -> tuple[list[str], list[str]]:
    """The first ``k`` titles only the dense list has, and the first ``k`` only the BM25 list has."""
    (dense, _), (lexical, _) = lists
    dense_ids, lexical_ids = dense.tolist(), lexical.tolist()
    only = [[i for i in a if i >= 0 and i not in set(b)][:k] for a, b in ((dense_ids, lexical_ids),
                                                                          (lexical_ids, dense_ids))]
    return tuple([dataset.product_texts[i] for i in ids] for ids in only)


def training_lines(cfg, dataset, engines, qids, limits) -> tuple[list[list[str]], list[list[str]]]:
    """Per query, lines from its nearest training queries (dense encoder): their relevant items' shared words
    (5 nearest, 2 words a line, as many lines as the prompt asks) and one relevant title of each of the 3 nearest."""
    train = trainable_queries(cfg, dataset, "train")
    encoder = engines.get("dense").encoder
    queries = [dataset.queries[q] for q in qids]
    similarity = encoder.encode(queries) @ encoder.encode([dataset.queries[q] for q in train]).T
    nearest = [[train[j] for j in row] for row in similarity.topk(5, dim=1).indices.tolist()]
    vocabulary = CatalogVocabulary(list(dataset.product_texts))
    n_exp = cfg.prompt.num_expansions
    words = [term_expansions(q, vocabulary.feedback_terms(q, [t for n in nn for t in relevant_titles(dataset, n)],
                                                           cfg.distill.label_terms), 2, n_exp, *limits)
             for q, nn in zip(queries, nearest)]
    titles = [title_expansions(q, [relevant_titles(dataset, n)[0] for n in nn[:3]], *limits)
              for q, nn in zip(queries, nearest)]
    return words, titles


def wide_pool(cfg, dataset, engines, scores, qids: list[str]):
    """Per query, the wide pool's lines (as typed: PRF from the hybrid's top 20 titles, the query with a word
    dropped, each engine's own titles, the training split's nearest queries' words and titles), and its parts
    the training neighbours' words and the 20 PRF lines."""
    limits = (cfg.rules.max_words, cfg.rules.max_chars)
    queries = [dataset.queries[q] for q in qids]
    prf20 = [title_expansions(q, top_titles(dataset.product_texts, r, 20), *limits)
             for q, r in zip(queries, scores.originals)]
    only = [engine_only_titles(dataset, lists) for lists in scores.lists]
    words, titles = training_lines(cfg, dataset, engines, qids, limits)
    wide = [p + drop_one(q) + title_expansions(q, o[0], *limits) + title_expansions(q, o[1], *limits) + w + t
            for p, q, o, w, t in zip(prf20, queries, only, words, titles)]
    return wide, words, prf20


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--config", default="experiments/configs/labels.toml")
    ap.add_argument("--max-queries", type=int, default=300)
    ap.add_argument("--wide", action="store_true", help="add the deeper screen, each engine's own titles and the "
                                                       "training split's nearest queries")
    ap.add_argument("--output", default="runs/probe_relaxation.json")
    args = ap.parse_args()
    cfg = load_config(args.config, [])
    dataset = load_dataset(cfg.data.path)
    qids = trainable_queries(cfg, dataset, "valid")[: args.max_queries]
    engines = Engines(cfg, dataset)
    plan = build_plan(cfg, dataset, "hybrid", engines)
    scores = EngineScores(plan, dataset, qids)
    base = scores.scores["original query"]
    shown = [top_titles(dataset.product_texts, r, cfg.prompt.context_k) for r in scores.originals]
    limits = (cfg.rules.max_words, cfg.rules.max_chars)
    families = {"drop-one": [drop_one(dataset.queries[q]) for q in qids],
                "prf": [title_expansions(dataset.queries[q], t[:3], *limits) for q, t in zip(qids, shown)]}
    if args.wide:
        deep = [top_titles(dataset.product_texts, r, 20)[3:] for r in scores.originals]
        only = [engine_only_titles(dataset, lists) for lists in scores.lists]
        families["prf titles 4-20"] = [title_expansions(dataset.queries[q], t, *limits) for q, t in zip(qids, deep)]
        for j, name in enumerate(("dense-only", "bm25-only")):
            families[f"prf {name}"] = [title_expansions(dataset.queries[q], o[j], *limits) for q, o in zip(qids, only)]
        families["neighbours' words"], families["neighbours' titles"] = training_lines(cfg, dataset, engines, qids,
                                                                                        limits)
    out = {"split": "valid", "num_queries": len(qids), **provenance(cfg), "families": list(families), "rows": {}}

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
    # The greedy oracle over all families: up to 3 lines per query, each round adding the line that raises
    # R@100 (then nDCG@10) most, and stopping where none does.
    pool = [[line for lines in per_family for line in lines] for per_family in zip(*families.values())]
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
        report(f"all: greedy oracle, up to {max(len(c) for c in chosen)} lines", best)
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
