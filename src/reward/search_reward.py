"""Reward expansions by running them through the search engine.

One rollout's expansions are searched in a single batched engine call; the parts of the reward are
kept apart (:class:`RewardParts`) until the moment they are summed, so each can be logged.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch

from retrieval import fuse
from retrieval.metrics import ndcg_at_k, recall_at_k
from reward.rules import RulesConfig, check, usable

RELEVANCE_MODES = ("labels", "label_free")
RELEVANCE_TARGETS = ("expansions", "fused")


@dataclass
class RewardConfig:
    """How expansions are scored. Weights multiply parts that each lie roughly in [-1, 1]."""

    relevance: str = "labels"
    """``labels``: nDCG@relevance_k of each expansion's own results against the judgments, averaged over
    expansions. ``label_free``: the mean cosine between the original query and those results, under the
    engine's encoder: needs no labels, so it trains on raw query logs (the production case)."""
    relevance_on: str = "expansions"
    """``expansions``: relevance is that of each expansion's own results (the paper's design: each expansion
    must be a good query by itself). ``fused``: nDCG@relevance_k of the fused list (original + expansions)
    minus that of the original alone, which is exactly what ``make eval`` measures; labels mode only."""
    relevance_weight: float = 1.0
    coverage_weight: float = 1.0
    """Coverage: Recall@coverage_k of the fused list (original + expansions) minus that of the original
    alone: what the expansions add. In label-free mode, the cosine-weighted share of new items."""
    rule_penalty: float = 0.25
    """Subtracted once per violated platform rule."""
    unparsable_reward: float = -1.0
    """The whole reward of a completion with no expansion in it: a fixed floor below any parsable one."""
    relevance_k: int = 10
    coverage_k: int = 100
    fusion: str = "rrf"
    """How the original's list and the expansions' lists merge: ``rrf`` or ``max`` (score)."""
    original_weight: float = 1.0
    """Weight of the original query's list in the fusion; > 1 keeps its head results on top."""
    rrf_k: int = 60


@dataclass
class RewardParts:
    """Per-completion reward parts, each ``[B]``; ``total`` is their weighted sum."""

    relevance: torch.Tensor
    coverage: torch.Tensor
    rules: torch.Tensor
    total: torch.Tensor
    violations: list[list[str]] = field(default_factory=list)
    expansions_used: list[list[str]] = field(default_factory=list)


def fuse_with_original(
    original_ids: torch.Tensor,
    expansion_ids: list[torch.Tensor],
    cfg: RewardConfig,
    original_scores: torch.Tensor | None = None,
    expansion_scores: list[torch.Tensor] | None = None,
) -> torch.Tensor:
    """One ranked list ``[coverage_k]`` from the original query's ids ``[k]`` and each expansion's ids."""
    if not expansion_ids:
        return original_ids[: cfg.coverage_k]
    scores = None if original_scores is None else [original_scores, *expansion_scores]
    return fuse(
        [original_ids, *expansion_ids],
        how=cfg.fusion,
        k=cfg.coverage_k,
        weights=[cfg.original_weight] + [1.0] * len(expansion_ids),
        scores=scores,
        rrf_k=cfg.rrf_k,
    )


class SearchReward:
    """The search environment of the policy: it shows the engine's results and scores expansions.

    ``dataset`` is a :class:`retrieval.Dataset`, ``engine`` anything with ``search(texts, k)``. The original
    query's results are cached per query id, since every step and every GRPO iteration reuses them.
    """

    def __init__(self, dataset, engine, cfg: RewardConfig, rules: RulesConfig):
        if cfg.relevance not in RELEVANCE_MODES:
            raise ValueError(f"reward.relevance must be one of {RELEVANCE_MODES}, got {cfg.relevance!r}")
        if cfg.relevance_on not in RELEVANCE_TARGETS:
            raise ValueError(f"reward.relevance_on must be one of {RELEVANCE_TARGETS}, got {cfg.relevance_on!r}")
        if cfg.relevance_on == "fused" and cfg.relevance != "labels":
            # The original's own top results are by construction the closest to the query, so a label-free
            # score of the fused list could only fall: the signal would only punish.
            raise ValueError("reward.relevance_on = 'fused' needs reward.relevance = 'labels'")
        self.dataset, self.engine, self.cfg, self.rules = dataset, engine, cfg, rules
        self._original: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
        self._query_vectors: dict[str, torch.Tensor] = {}

    @property
    def depth(self) -> int:
        return max(self.cfg.coverage_k, self.cfg.relevance_k)

    def original_results(self, qids: list[str]) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """(ids ``[depth]``, scores ``[depth]``) of each original query, searched once per query id."""
        missing = list(dict.fromkeys(q for q in qids if q not in self._original))
        if missing:
            ids, scores = self.engine.search([self.dataset.queries[q] for q in missing], self.depth)
            for i, q in enumerate(missing):
                self._original[q] = (ids[i], scores[i])
        return [self._original[q] for q in qids]

    def context(self, qids: list[str], k: int) -> list[list[str]]:
        """The titles of the engine's top-``k`` results for each query: what the policy gets to see."""
        texts = self.dataset.product_texts
        return [[texts[i] for i in ids[:k].tolist() if i >= 0] for ids, _ in self.original_results(qids)]

    def score(self, qids: list[str], expansions: list[list[str]]) -> RewardParts:
        """Score ``B`` completions: ``qids[b]`` is the query that completion ``b`` expanded."""
        cfg = self.cfg
        queries = [self.dataset.queries[q] for q in qids]
        violations = [check(e, q, self.rules) for e, q in zip(expansions, queries)]
        used = [usable(e, q, self.rules) for e, q in zip(expansions, queries)]
        results = self._search_all(used)
        originals = self.original_results(qids)

        relevance, coverage = [], []
        for qid, (orig_ids, orig_scores), texts in zip(qids, originals, used):
            exp_ids = [results[t][0] for t in texts]
            exp_scores = [results[t][1] for t in texts]
            fused = fuse_with_original(orig_ids, exp_ids, cfg, orig_scores, exp_scores)
            if cfg.relevance == "labels":
                rel, cov = self._labelled_parts(qid, orig_ids, exp_ids, fused)
            else:
                rel, cov = self._label_free_parts(qid, orig_ids, exp_ids)
            relevance.append(rel)
            coverage.append(cov)

        relevance_t = torch.tensor(relevance, dtype=torch.float32)
        coverage_t = torch.tensor(coverage, dtype=torch.float32)
        rules_t = -cfg.rule_penalty * torch.tensor([len(v) for v in violations], dtype=torch.float32)
        total = cfg.relevance_weight * relevance_t + cfg.coverage_weight * coverage_t + rules_t
        unparsable = torch.tensor(["unparsable" in v for v in violations])
        total = torch.where(unparsable, torch.full_like(total, cfg.unparsable_reward), total)
        return RewardParts(relevance_t, coverage_t, rules_t, total, violations, used)

    def _search_all(self, used: list[list[str]]) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        """Every distinct expansion of the rollout, in one batched engine call."""
        texts = list(dict.fromkeys(t for texts in used for t in texts))
        if not texts:
            return {}
        ids, scores = self.engine.search(texts, self.depth)
        return {t: (ids[i], scores[i]) for i, t in enumerate(texts)}

    def _labelled_parts(self, qid, orig_ids, exp_ids, fused) -> tuple[float, float]:
        gains = self.dataset.qrels.get(qid, {})
        k, rel_gain = self.cfg.relevance_k, self.dataset.relevant_gain
        if self.cfg.relevance_on == "fused":
            relevance = ndcg_at_k(fused, gains, k) - ndcg_at_k(orig_ids, gains, k)
        else:
            relevance = sum(ndcg_at_k(ids, gains, k) for ids in exp_ids) / len(exp_ids) if exp_ids else 0.0
        coverage = recall_at_k(fused, gains, self.cfg.coverage_k, rel_gain) - recall_at_k(
            orig_ids, gains, self.cfg.coverage_k, rel_gain
        )
        return relevance, coverage

    def _label_free_parts(self, qid, orig_ids, exp_ids) -> tuple[float, float]:
        if not exp_ids:
            return 0.0, 0.0
        query_vec = self._query_embedding(qid)
        catalog = self.engine.embeddings
        k = self.cfg.relevance_k
        top = torch.stack([ids[:k] for ids in exp_ids]).clamp(min=0)  # [n_expansions, k]
        sims = (catalog[top.to(catalog.device)] @ query_vec.to(catalog.device)).cpu()  # [n_expansions, k]
        seen = set(orig_ids[: self.cfg.coverage_k].tolist())
        is_new = torch.tensor([[i not in seen for i in row] for row in top.tolist()])
        return sims.mean().item(), (sims * is_new).sum().item() / sims.numel()

    def _query_embedding(self, qid: str) -> torch.Tensor:
        """The original query's vector ``[d]``, encoded once: all G completions of a group share it."""
        if qid not in self._query_vectors:
            self._query_vectors[qid] = self.engine.encoder.encode([self.dataset.queries[qid]])[0]
        return self._query_vectors[qid]
