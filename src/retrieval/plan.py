"""A retrieval plan: which engine serves the original query, which serves the expansions, how their lists fuse.

The reward and ``make eval`` take the same plan, so what is trained is what is measured::

    dense    RRF( w * dense(q),  dense(e1), dense(e2), ... )
    bm25     RRF( w * bm25(q),   bm25(e1),  bm25(e2),  ... )
    hybrid   RRF( dense(q), bm25(q), w_e * bm25(e1), w_e * bm25(e2), ... )

In the hybrid the dense retriever serves the query and the lexical side also takes the rewrites: expansions
close a vocabulary gap, which a dense model has mostly closed already and a lexical engine has not.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from .engine import SearchEngine
from .fusion import fuse

PLAN_KINDS = ("dense", "bm25", "hybrid")
__all__ = ["DEFAULT_FUSION", "PLAN_KINDS", "FusionSettings", "Lists", "RetrievalPlan", "top_titles"]


@dataclass(frozen=True)
class FusionSettings:
    """How one plan weights its lists. RRF is invariant to scaling every weight, so only ratios matter."""

    original_weight: float
    """Weight of each original-query list; above ``expansion_weight`` it keeps the original's head on top."""
    expansion_weight: float
    """Weight of each expansion's list."""
    rrf_k: int
    """RRF constant: score = sum_i w_i / (rrf_k + rank_i)."""


DEFAULT_FUSION = {
    # Each chosen on valid queries of Home Depot (experiments/RESULTS.md): a steep rank discount (k 10) with a
    # heavy original keeps the original's head and opens its tail to the expansions.
    "dense": FusionSettings(original_weight=4.0, expansion_weight=1.0, rrf_k=10),
    "bm25": FusionSettings(original_weight=2.0, expansion_weight=1.0, rrf_k=10),
    "hybrid": FusionSettings(original_weight=1.0, expansion_weight=0.5, rrf_k=60),
}


Lists = list[tuple[torch.Tensor, torch.Tensor]]
"""One (ids ``[depth]``, scores ``[depth]``) pair per list, best first, -1 / -inf padded."""


class RetrievalPlan:
    """Search the original query and the expansions with their engines, and fuse the lists.

    Args:
        kind: a name for reports (``dense``, ``bm25``, ``hybrid`` or the user's).
        original_engines: the engines that serve the original query; with more than one, the original
            ranking itself is their fusion (weights 1).
        expansion_engine: the engine that serves every expansion.
        fusion: the weights and RRF constant.
        depth: results taken from every list, and the length of every fused list.
        how: ``rrf``, or ``max`` (score fusion; only when one engine serves everything, since score
            scales differ between engines).
    """

    def __init__(self, kind: str, original_engines: Sequence[SearchEngine], expansion_engine: SearchEngine,
                 fusion: FusionSettings, depth: int = 100, how: str = "rrf") -> None:
        if not original_engines:
            raise ValueError("a retrieval plan needs at least one engine for the original query")
        if how == "max" and (len(original_engines) > 1 or original_engines[0] is not expansion_engine):
            raise ValueError("fusion 'max' compares raw scores, so it needs one engine for everything")
        if depth < 1:
            raise ValueError(f"plan depth must be >= 1, got {depth}")
        self.kind, self.original_engines, self.expansion_engine = kind, list(original_engines), expansion_engine
        self.fusion, self.depth, self.how = fusion, depth, how

    def __repr__(self) -> str:
        return f"RetrievalPlan({self.kind!r}, {self.fusion}, depth={self.depth}, how={self.how!r})"

    def describe(self) -> dict:
        """The plan's settings, for reports and checkpoints."""
        return {"kind": self.kind, "depth": self.depth, "how": self.how, **self.fusion.__dict__,
                "original_engines": [type(e).__name__ for e in self.original_engines],
                "expansion_engine": type(self.expansion_engine).__name__}

    def search_original(self, texts: list[str]) -> list[Lists]:
        """Each original engine's list for each text: ``out[i][j]`` is engine ``j``'s (ids, scores) of text ``i``."""
        per_engine = [engine.search(texts, self.depth) for engine in self.original_engines]
        return [[(ids[i], scores[i]) for ids, scores in per_engine] for i in range(len(texts))]

    def search_expansions(self, texts: list[str]) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        """Every distinct text's (ids ``[depth]``, scores ``[depth]``) from the expansion engine, in one call."""
        unique = list(dict.fromkeys(texts))
        if not unique:
            return {}
        ids, scores = self.expansion_engine.search(unique, self.depth)
        return {t: (ids[i], scores[i]) for i, t in enumerate(unique)}

    def rank(self, texts: list[str]) -> list[torch.Tensor]:
        """Each text's own ranking ``[depth]``, no expansion: what a shopper's query gets from the engine."""
        return [self.original_ranking(lists) for lists in self.search_original(texts)]

    def original_ranking(self, original: Lists) -> torch.Tensor:
        """The original query's own ranking ``[depth]``: what the engine returns with no expansion."""
        if len(original) == 1:
            return original[0][0][: self.depth]
        return fuse([ids for ids, _ in original], k=self.depth, rrf_k=self.fusion.rrf_k)

    def fuse(self, original: Lists, expansions: Lists) -> torch.Tensor:
        """The ranking ``[depth]`` served for a query: its original lists fused with its expansions' lists."""
        if not expansions:
            return self.original_ranking(original)
        lists = original + expansions
        weights = ([self.fusion.original_weight] * len(original) + [self.fusion.expansion_weight] * len(expansions))
        scores = [s for _, s in lists] if self.how == "max" else None
        return fuse([ids for ids, _ in lists], how=self.how, k=self.depth, weights=weights, scores=scores,
                    rrf_k=self.fusion.rrf_k)


def top_titles(product_texts: Sequence[str], ranking: torch.Tensor, k: int) -> list[str]:
    """The texts of a ranking's first ``k`` items: the context the policy is shown."""
    return [product_texts[i] for i in ranking[:k].tolist() if i >= 0]
