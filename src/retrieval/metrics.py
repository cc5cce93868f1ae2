"""Ranking metrics over catalog row ids with graded judgments.

``ranked`` is a 1-D sequence or tensor of catalog row ids, best first; -1 entries are padding and count as
not relevant. An id repeated in ``ranked`` counts only at its first position. ``gains`` maps row id -> gain;
unjudged items have gain 0.

Conventions: linear gain, log2(rank + 1) discount, ideal DCG from all judged gains of the query. A query with
no positive gain has nDCG 0, and one with no item at or above ``relevant_gain`` has recall and MRR 0: such
queries are kept in averages (as trec_eval does) rather than silently dropped.
"""
from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence

import torch

__all__ = [
    "coverage_increment",
    "dcg_at_k",
    "evaluate_rankings",
    "mrr_at_k",
    "ndcg_at_k",
    "recall_at_k",
]

Ranked = Sequence[int] | torch.Tensor


def _top(ranked: Ranked, k: int) -> list[int]:
    """First ``k`` entries as ints, later repeats of an id replaced by -1 so ranks stay positional."""
    values = ranked.reshape(-1)[:k].tolist() if isinstance(ranked, torch.Tensor) else list(ranked)[:k]
    seen: set[int] = set()
    out = []
    for item in map(int, values):
        out.append(-1 if item in seen else item)
        seen.add(item)
    return out


def dcg_at_k(ranked: Ranked, gains: Mapping[int, float], k: int) -> float:
    """sum over ranks r = 1..k of gain(ranked[r-1]) / log2(r + 1)."""
    return sum(gains.get(item, 0.0) / math.log2(rank + 1) for rank, item in enumerate(_top(ranked, k), 1))


def ndcg_at_k(ranked: Ranked, gains: Mapping[int, float], k: int) -> float:
    """DCG@k / ideal DCG@k; 0 when the query has no positive gain."""
    ideal = sorted((g for g in gains.values() if g > 0), reverse=True)[:k]
    idcg = sum(g / math.log2(rank + 1) for rank, g in enumerate(ideal, 1))
    return dcg_at_k(ranked, gains, k) / idcg if idcg > 0 else 0.0


def _relevant(gains: Mapping[int, float], relevant_gain: float) -> set[int]:
    return {item for item, g in gains.items() if g >= relevant_gain}


def recall_at_k(ranked: Ranked, gains: Mapping[int, float], k: int, relevant_gain: float) -> float:
    """Fraction of the items with gain >= ``relevant_gain`` found in the top k; 0 when there are none."""
    relevant = _relevant(gains, relevant_gain)
    if not relevant:
        return 0.0
    return len(relevant.intersection(_top(ranked, k))) / len(relevant)


def mrr_at_k(ranked: Ranked, gains: Mapping[int, float], k: int, relevant_gain: float) -> float:
    """1 / rank of the first item with gain >= ``relevant_gain`` in the top k; 0 when there is none."""
    for rank, item in enumerate(_top(ranked, k), 1):
        if item >= 0 and gains.get(item, 0.0) >= relevant_gain:
            return 1.0 / rank
    return 0.0


def coverage_increment(
    fused: Ranked, original: Ranked, gains: Mapping[int, float], k: int, relevant_gain: float
) -> float:
    """recall@k(fused) - recall@k(original): the share of relevant items that the fused results (original
    query + expansions) reach and the original query alone does not, net of those it loses. In [-1, 1]."""
    return recall_at_k(fused, gains, k, relevant_gain) - recall_at_k(original, gains, k, relevant_gain)


def evaluate_rankings(
    rankings: Mapping[str, Ranked],
    qrels: Mapping[str, Mapping[int, float]],
    relevant_gain: float,
    ks: Iterable[int] = (10, 100),
) -> dict[str, float]:
    """Mean metrics over the queries in ``rankings``.

    Returns:
        ``{"ndcg@10", "mrr@10", "recall@k" for k in ks, "n_queries"}``; nDCG and MRR at 10, as is customary
        for product search. A query missing from ``qrels`` has no judgments and scores 0.
    """
    ks = sorted(set(ks))
    totals: dict[str, float] = {"ndcg@10": 0.0, "mrr@10": 0.0, **{f"recall@{k}": 0.0 for k in ks}}
    for qid, ranked in rankings.items():
        gains = qrels.get(qid, {})
        totals["ndcg@10"] += ndcg_at_k(ranked, gains, 10)
        totals["mrr@10"] += mrr_at_k(ranked, gains, 10, relevant_gain)
        for k in ks:
            totals[f"recall@{k}"] += recall_at_k(ranked, gains, k, relevant_gain)
    n = len(rankings)
    means = {name: (total / n if n else 0.0) for name, total in totals.items()}
    return {**means, "n_queries": float(n)}
