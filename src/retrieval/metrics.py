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

import numpy as np
import torch

__all__ = [
    "dcg_at_k",
    "evaluate_rankings",
    "query_metrics",
    "mrr_at_k",
    "ndcg_at_k",
    "paired_bootstrap",
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


def query_metrics(ranked: Ranked, gains: Mapping[int, float], relevant_gain: float, ndcg_at: Iterable[int] = (10,),
                  recall_at: Iterable[int] = (10, 100), mrr_at: Iterable[int] = (10,)) -> dict[str, float]:
    """One query's metrics, ``{"ndcg@k", "recall@k", "mrr@k"}`` at the cut-offs asked: the one function that
    the reward and ``make eval`` both call, so a trained quantity and a measured one cannot drift apart."""
    out = {f"ndcg@{k}": ndcg_at_k(ranked, gains, k) for k in ndcg_at}
    out.update({f"recall@{k}": recall_at_k(ranked, gains, k, relevant_gain) for k in recall_at})
    out.update({f"mrr@{k}": mrr_at_k(ranked, gains, k, relevant_gain) for k in mrr_at})
    return out


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
        for name, value in query_metrics(ranked, qrels.get(qid, {}), relevant_gain, recall_at=ks).items():
            totals[name] += value
    n = len(rankings)
    means = {name: (total / n if n else 0.0) for name, total in totals.items()}
    return {**means, "n_queries": float(n)}


def paired_bootstrap(
    differences: Sequence[float] | np.ndarray, resamples: int = 10_000, confidence: float = 0.95, seed: int = 0
) -> dict[str, float]:
    """How sure a mean per-query difference (a system's metric minus a baseline's, on the same queries) is.

    Queries are resampled with replacement ``resamples`` times, since queries are what would change in another
    sample; the interval is the percentile interval of the resampled means. Seeded: the same input gives the
    same interval.

    Returns:
        ``{"mean", "ci_low", "ci_high", "better", "worse", "same"}``: the mean difference, its interval, and
        how many queries went up, down, or did not move.
    """
    d = np.asarray(differences, dtype=np.float64)
    if d.ndim != 1 or d.size == 0:
        raise ValueError(f"differences: want a non-empty 1-D sequence, one value per query; got shape {d.shape}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    rng = np.random.default_rng(seed)
    means = np.concatenate([d[rng.integers(0, d.size, size=(n, d.size))].mean(axis=1)
                            for n in _chunks(resamples, max(1, 2_000_000 // d.size))])
    tail = (1 - confidence) / 2
    low, high = np.quantile(means, [tail, 1 - tail])
    return {"mean": float(d.mean()), "ci_low": float(low), "ci_high": float(high),
            "better": int((d > 0).sum()), "worse": int((d < 0).sum()), "same": int((d == 0).sum())}


def _chunks(total: int, size: int) -> list[int]:
    """``total`` split into pieces of at most ``size``: bounds the resampling's index matrix."""
    return [min(size, total - start) for start in range(0, total, size)]
