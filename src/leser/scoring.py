"""How ``make eval`` scores a row: per-query metrics of each fused ranking, and paired differences with intervals.

A row is one system's expansions of the evaluated queries on one plan (:class:`EngineScores`); its scores are
kept per query (ranx's way), so any two rows of the same queries can be paired (:func:`paired`).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from retrieval import Dataset
from retrieval.metrics import paired_bootstrap, query_metrics
from retrieval.plan import RetrievalPlan

METRICS = ("ndcg@10", "recall@10", "recall@100", "mrr@10", "coverage_increment")
PAIRED_METRICS = ("ndcg@10", "recall@100")
"""The metrics each expansion row is compared on, query by query."""
ORIGINAL, PSEUDO_RELEVANCE = "original query", "pseudo-relevance feedback (no model)"
PSEUDO_RELEVANCE_ONE_LINE = "pseudo-relevance feedback, 1 line (smaller budget)"
"""``[eval] pseudo_relevance_one_line``: the earlier no-model row, one line; not an equal-budget baseline."""


@dataclass
class Row:
    system: str
    engine: str
    metrics: dict[str, float]
    rule_violation_rate: float | None = None
    latency_ms_per_query: float | None = None
    generation: dict | None = None
    vs_original: dict[str, dict[str, float]] | None = None
    """Per metric in PAIRED_METRICS: the mean per-query difference from this engine's original query, its 95%
    bootstrap interval and how many queries went up or down (:func:`retrieval.metrics.paired_bootstrap`)."""
    vs_pseudo_relevance: dict[str, dict[str, float]] | None = None
    """The same against the pseudo-relevance row on this engine: the bar a trained policy must clear."""
    examples: list[dict] = field(default_factory=list)


def per_query_scores(dataset: Dataset, qids: list[str], rankings: list[torch.Tensor],
                     originals: list[torch.Tensor]) -> dict[str, np.ndarray]:
    """Each metric of METRICS per query ``[len(qids)]``; ``rankings[i]`` and ``originals[i]`` are ranked
    catalog rows for qids[i]."""
    rel = dataset.relevant_gain
    scores = {k: np.zeros(len(qids)) for k in METRICS}
    for i, (qid, ranked, orig) in enumerate(zip(qids, rankings, originals)):
        gains = dataset.qrels.get(qid, {})
        for name, value in query_metrics(ranked, gains, rel).items():
            scores[name][i] = value
        scores["coverage_increment"][i] = scores["recall@100"][i] - query_metrics(orig, gains, rel)["recall@100"]
    return scores


def mean_scores(scores: dict[str, np.ndarray]) -> dict[str, float]:
    """Mean of each per-query metric (0 when there are no queries)."""
    return {k: float(v.mean()) if len(v) else 0.0 for k, v in scores.items()}


def paired(system: dict[str, np.ndarray], baseline: dict[str, np.ndarray]) -> dict[str, dict[str, float]]:
    """Per-query differences of two :func:`per_query_scores` of the same queries, with bootstrap intervals."""
    return {m: paired_bootstrap(system[m] - baseline[m]) for m in PAIRED_METRICS}


@dataclass
class Expansions:
    """One policy's expansions of a list of queries, with what producing them cost."""

    expansions: list[list[str]]
    violations: list[list[str]]
    seconds: float
    generation: dict
    samples: list[list[list[str]]] | None = None
    """``[eval] judge_choice_samples`` sampled completions per query (usable lines only), when asked for."""



class EngineScores:
    """One plan's original lists for the evaluated queries, and every row's per-query scores on it."""

    def __init__(self, plan: RetrievalPlan, dataset: Dataset, qids: list[str]):
        self.plan, self.dataset, self.qids = plan, dataset, qids
        self.lists = plan.search_original([dataset.queries[q] for q in qids])
        self.originals = [plan.original_ranking(lists) for lists in self.lists]
        self.scores = {ORIGINAL: per_query_scores(dataset, qids, self.originals, self.originals)}

    def fused(self, expansions: list[list[str]]) -> list[torch.Tensor]:
        """Each query's ranking with its expansions, fused as the reward fuses them."""
        found = self.plan.search_expansions([e for es in expansions for e in es])
        return [self.plan.fuse(lists, [found[e] for e in es]) for lists, es in zip(self.lists, expansions)]

    def add(self, system: str, expansions: list[list[str]]) -> None:
        self.scores[system] = per_query_scores(self.dataset, self.qids, self.fused(expansions), self.originals)

    def row(self, system: str, out: Expansions | None = None) -> Row:
        scores, n = self.scores[system], len(self.qids)
        row = Row(system, self.plan.kind, mean_scores(scores))
        if out is None:
            return row
        row.vs_original = paired(scores, self.scores[ORIGINAL])
        if system != PSEUDO_RELEVANCE and PSEUDO_RELEVANCE in self.scores:
            row.vs_pseudo_relevance = paired(scores, self.scores[PSEUDO_RELEVANCE])
        row.rule_violation_rate = sum(bool(v) for v in out.violations) / n
        row.latency_ms_per_query = 1000 * out.seconds / n
        row.generation = {**out.generation, "plan": self.plan.describe()}
        row.examples = [{"query": self.dataset.queries[self.qids[j]], "expansions": out.expansions[j]}
                        for j in range(min(5, n))]
        return row
