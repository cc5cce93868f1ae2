"""Fusion of ranked lists: reciprocal rank fusion (RRF) or max-score, weighted, with deterministic ties.

One method here, in the spirit of ranx's ``fusion/rrf.py``; :mod:`retrieval.plan` decides which lists are
fused with which weights.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch

__all__ = ["fuse", "fuse_with_scores"]


def pad_results(ids: torch.Tensor, scores: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Widen ``[n, m]`` results to ``[n, k]`` with id -1 / score -inf (m <= k)."""
    missing = k - ids.shape[1]
    if missing <= 0:
        return ids, scores
    n = ids.shape[0]
    return (
        torch.cat([ids, ids.new_full((n, missing), -1)], 1),
        torch.cat([scores, scores.new_full((n, missing), float("-inf"))], 1),
    )


def fuse_with_scores(
    ranked_lists: Sequence[torch.Tensor],
    how: str = "rrf",
    k: int = 100,
    weights: Sequence[float] | None = None,
    scores: Sequence[torch.Tensor] | None = None,
    rrf_k: int = 60,
) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`fuse`, also returning the fused score of each result (``[k]`` float32, -inf for padding)."""
    if how not in ("rrf", "max"):
        raise ValueError(f"unknown fusion {how!r}; expected 'rrf' or 'max'")
    if how == "max" and scores is None:
        raise ValueError("fusion 'max' needs the retrieval scores of every list")
    weights = [1.0] * len(ranked_lists) if weights is None else list(weights)
    if len(weights) != len(ranked_lists) or (scores is not None and len(scores) != len(ranked_lists)):
        raise ValueError("weights and scores need one entry per ranked list")
    if not ranked_lists:
        return torch.full((k,), -1, dtype=torch.long), torch.full((k,), float("-inf"))

    ids = torch.cat([torch.as_tensor(r, dtype=torch.long).reshape(-1) for r in ranked_lists])
    sizes = [torch.as_tensor(r).numel() for r in ranked_lists]
    weight = torch.repeat_interleave(torch.tensor(weights, dtype=torch.float64), torch.tensor(sizes))
    if how == "rrf":
        rank = torch.cat([torch.arange(1, n + 1, dtype=torch.float64) for n in sizes])
        contribution = weight / (rrf_k + rank)
    else:
        raw = torch.cat([torch.as_tensor(s, dtype=torch.float64).reshape(-1) for s in scores])
        contribution = weight * raw
    valid = ids >= 0
    ids, contribution = ids[valid], contribution[valid]
    position = torch.arange(valid.numel())[valid]  # place in the concatenation = order of first appearance

    unique, inverse = torch.unique(ids, return_inverse=True)
    first = torch.full((unique.numel(),), valid.numel(), dtype=torch.long).scatter_reduce_(
        0, inverse, position, "amin"
    )
    if how == "rrf":
        fused = torch.zeros(unique.numel(), dtype=torch.float64).scatter_add_(0, inverse, contribution)
    else:
        fused = torch.full((unique.numel(),), float("-inf"), dtype=torch.float64).scatter_reduce_(
            0, inverse, contribution, "amax"
        )
    # Order by first appearance, then a stable sort on score: ties keep first-appearance order.
    by_first = torch.argsort(first)
    order = by_first[torch.argsort(-fused[by_first], stable=True)][:k]
    out_ids, out_scores = unique[order], fused[order].float()
    padded = pad_results(out_ids.unsqueeze(0), out_scores.unsqueeze(0), k)
    return padded[0][0], padded[1][0]


def fuse(ranked_lists: Sequence[torch.Tensor], **options) -> torch.Tensor:
    """One ranked list ``[k]`` (int64, -1 padded) from several, e.g. an original query and its expansions.

    Args (``options`` are :func:`fuse_with_scores`'s keywords):
        ranked_lists: ``[k_i]`` catalog ids each, best first; -1 entries are ignored.
        how: "rrf": score(d) = sum_i w_i / (rrf_k + rank_i(d)), rank from 1, over the lists containing d;
            "max": score(d) = max_i w_i * scores_i(d) (needs ``scores``).
        k: length of the result.
        weights: one per list; default all 1.
        scores: ``[k_i]`` retrieval scores aligned with ``ranked_lists`` (for "max").
        rrf_k: RRF smoothing constant.

    Ties are broken by first appearance in ``ranked_lists`` (list order, then rank), so results are
    deterministic.

    Raises:
        ValueError: unknown ``how``, or "max" without ``scores``.
    """
    return fuse_with_scores(ranked_lists, **options)[0]
