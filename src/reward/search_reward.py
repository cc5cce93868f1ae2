"""Reward expansions by running them through the search engine.

One rollout's expansions are searched in a single batched engine call; the parts of the reward are
kept apart (:class:`RewardParts`) until the moment they are summed, so each can be logged.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
from tqdm.auto import tqdm

from retrieval.metrics import query_metrics
from retrieval.plan import Lists, RetrievalPlan, top_titles
from reward.rules import RulesConfig, check, usable

RELEVANCE_MODES = ("labels", "label_free", "judge", "mixed")
JUDGED_MODES = ("judge", "mixed")
"""The modes that read a :class:`reward.relevance_judge.RelevanceJudge`."""
RELEVANCE_TARGETS = ("expansions", "fused")


@dataclass
class RewardConfig:
    """How expansions are scored. Weights multiply parts that each lie roughly in [-1, 1]."""

    relevance: str = "labels"
    """``labels``: nDCG@relevance_k of each expansion's own results against the judgments, averaged over
    expansions. ``label_free``: the mean cosine between the original query and those results, under the
    engine's encoder: needs no labels, so it trains on raw query logs (the production case). ``judge``: the
    labels mode's three parts (``relevance_on = "fused"``), measured with a learned relevance judge over every
    product the fused list holds, judged or not (:meth:`SearchReward._judged_parts`): it pays for relevant
    products nobody judged and needs no labels for the training queries. ``mixed``: the mean of the labels and
    judge parts."""
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
    deep_weight: float = 0.0
    """Weight of a rank-based term over the whole fused list: nDCG@depth of the fused list minus the
    original's (depth: ``[engine] depth``). It moves whenever a judged item moves anywhere in the list, not
    only when it crosses rank 10 or 100, so fewer groups of completions tie. Labels mode only."""
    headroom_only: bool = False
    """Train only on queries where the original ranking leaves room: nDCG@relevance_k < 1 or a relevant item
    missing from its top coverage_k. Elsewhere no expansion can raise the reward."""


@dataclass
class RewardParts:
    """Per-completion reward parts, each ``[B]``; ``total`` is their weighted sum."""

    relevance: torch.Tensor
    coverage: torch.Tensor
    deep: torch.Tensor
    rules: torch.Tensor
    total: torch.Tensor
    violations: list[list[str]] = field(default_factory=list)
    expansions_used: list[list[str]] = field(default_factory=list)


PART_NAMES = ("total", "relevance", "coverage", "deep", "rules")
"""The scalar parts of :class:`RewardParts`, in the order logs show them."""


def _dcg(gains: torch.Tensor, k: int) -> float:
    """DCG@k of a list's gains ``[n]`` in rank order (log2 discount, as :func:`retrieval.metrics.dcg_at_k`)."""
    top = gains[:k]
    return float((top / torch.log2(torch.arange(2, len(top) + 2, dtype=torch.float32))).sum())


class SearchReward:
    """The search environment of the policy: it shows the engine's results and scores expansions.

    ``dataset`` is a :class:`retrieval.Dataset`, ``plan`` a :class:`retrieval.RetrievalPlan` (which engines
    serve the query and the expansions, and how their lists fuse). The original query's lists are cached per
    query id, since every step and every GRPO iteration reuses them.
    """

    def __init__(self, dataset, plan: RetrievalPlan, cfg: RewardConfig, rules: RulesConfig, speller=None, judge=None):
        if cfg.relevance not in RELEVANCE_MODES:
            raise ValueError(f"reward.relevance must be one of {RELEVANCE_MODES}, got {cfg.relevance!r}")
        if cfg.relevance in JUDGED_MODES and judge is None:
            raise ValueError(f"reward.relevance = {cfg.relevance!r} needs a relevance judge ([judge] model)")
        if cfg.relevance in JUDGED_MODES and cfg.relevance_on != "fused":
            raise ValueError(f"reward.relevance = {cfg.relevance!r} needs reward.relevance_on = 'fused'")
        if cfg.relevance == "judge" and cfg.headroom_only:
            raise ValueError("reward.headroom_only reads the labels; with reward.relevance = 'judge' set it false")
        if cfg.relevance_on not in RELEVANCE_TARGETS:
            raise ValueError(f"reward.relevance_on must be one of {RELEVANCE_TARGETS}, got {cfg.relevance_on!r}")
        if cfg.relevance_on == "fused" and cfg.relevance == "label_free":
            # The original's own top results are by construction the closest to the query, so a label-free
            # score of the fused list could only fall: the signal would only punish.
            raise ValueError("reward.relevance_on = 'fused' needs reward.relevance = 'labels'")
        if cfg.relevance == "label_free" and not hasattr(plan.expansion_engine, "embeddings"):
            raise ValueError("reward.relevance = 'label_free' needs a plan whose expansions go to the dense engine")
        if max(cfg.relevance_k, cfg.coverage_k) > plan.depth:
            raise ValueError(f"reward cut-offs ({cfg.relevance_k}, {cfg.coverage_k}) exceed the plan depth "
                             f"{plan.depth}")
        self.dataset, self.plan, self.cfg, self.rules = dataset, plan, cfg, rules
        self.speller = speller
        self.judge = judge
        """A :class:`reward.relevance_judge.RelevanceJudge` in the judge and mixed modes, else None."""
        """A :class:`retrieval.Speller` when the expanders are shown queries with their typos fixed, else None."""
        self._original: dict[str, tuple[Lists, torch.Tensor]] = {}
        self._original_metrics: dict[str, dict[str, float]] = {}
        self._query_vectors: dict[str, torch.Tensor] = {}

    def original_results(self, qids: list[str]) -> list[tuple[Lists, torch.Tensor]]:
        """Each original query's lists (one per original engine) and its own ranking ``[depth]``, searched
        once per query id."""
        missing = list(dict.fromkeys(q for q in qids if q not in self._original))
        if missing:
            found = self.plan.search_original([self.dataset.queries[q] for q in missing])
            for q, lists in zip(missing, found):
                self._original[q] = (lists, self.plan.original_ranking(lists))
        return [self._original[q] for q in qids]

    def context(self, qids: list[str], k: int) -> list[list[str]]:
        """The titles of the engine's top-``k`` results for each query: what the policy gets to see."""
        return [top_titles(self.dataset.product_texts, ranking, k) for _, ranking in self.original_results(qids)]

    def shown_query(self, query: str, titles: list[str]) -> str:
        """The query as the policy is shown it next to ``titles``: with its typos fixed when there is a speller
        (``[engine] correct_spelling``), else as typed. The engine always runs the query as typed."""
        return self.speller.correct(query, titles) if self.speller is not None else query

    def with_headroom(self, qids: list[str]) -> list[str]:
        """The queries whose original ranking an expansion could still improve at the reward's cut-offs:
        nDCG@relevance_k below 1, or a relevant item outside the top coverage_k."""
        for start in tqdm(range(0, len(qids), 512), desc="headroom", unit="x512 queries", leave=False):
            self.original_results(qids[start:start + 512])  # searched in chunks, so the bar moves
        kept = []
        for qid in qids:
            m = self._original_metrics_of(qid)
            if m[f"ndcg@{self.cfg.relevance_k}"] < 1 - 1e-9 or m[f"recall@{self.cfg.coverage_k}"] < 1 - 1e-9:
                kept.append(qid)
        return kept

    def score(self, qids: list[str], expansions: list[list[str]]) -> RewardParts:
        """Score ``B`` completions: ``qids[b]`` is the query that completion ``b`` expanded."""
        cfg = self.cfg
        queries = [self.dataset.queries[q] for q in qids]
        violations = [check(e, q, self.rules) for e, q in zip(expansions, queries)]
        used = [usable(e, q, self.rules) for e, q in zip(expansions, queries)]
        results = self.plan.search_expansions([t for texts in used for t in texts])

        parts, fused_lists = [], []
        for qid, (lists, ranking), texts in zip(qids, self.original_results(qids), used):
            exp_lists = [results[t] for t in texts]
            fused = self.plan.fuse(lists, exp_lists) if cfg.relevance != "label_free" else None
            fused_lists.append(fused)
            if cfg.relevance in ("labels", "mixed"):
                parts.append(self._labelled_parts(qid, exp_lists, fused))
            elif cfg.relevance == "label_free":
                parts.append((*self._label_free_parts(qid, ranking, [ids for ids, _ in exp_lists]), 0.0))
        if cfg.relevance in JUDGED_MODES:
            judged = self._judged_parts(qids, fused_lists)
            parts = judged if cfg.relevance == "judge" else [tuple((a + b) / 2 for a, b in zip(p, j))
                                                             for p, j in zip(parts, judged)]

        relevance_t, coverage_t, deep_t = torch.tensor(parts, dtype=torch.float32).reshape(-1, 3).unbind(1)
        rules_t = -cfg.rule_penalty * torch.tensor([len(v) for v in violations], dtype=torch.float32)
        total = cfg.relevance_weight * relevance_t + cfg.coverage_weight * coverage_t + cfg.deep_weight * deep_t
        total = total + rules_t
        unparsable = torch.tensor(["unparsable" in v for v in violations])
        total = torch.where(unparsable, torch.full_like(total, cfg.unparsable_reward), total)
        return RewardParts(relevance_t, coverage_t, deep_t, rules_t, total, violations, used)

    def _metrics(self, qid: str, ranked: torch.Tensor) -> dict[str, float]:
        """nDCG at relevance_k and at the plan depth, recall at coverage_k (:func:`retrieval.query_metrics`)."""
        return query_metrics(ranked, self.dataset.qrels.get(qid, {}), self.dataset.relevant_gain,
                             ndcg_at=(self.cfg.relevance_k, self.plan.depth), recall_at=(self.cfg.coverage_k,),
                             mrr_at=())

    def _original_metrics_of(self, qid: str) -> dict[str, float]:
        """:meth:`_metrics` of the original ranking, once per query id: all G completions of a group, and every
        step that draws the query again, compare against it."""
        if qid not in self._original_metrics:
            self._original_metrics[qid] = self._metrics(qid, self.original_results([qid])[0][1])
        return self._original_metrics[qid]

    def _labelled_parts(self, qid, exp_lists, fused) -> tuple[float, float, float]:
        """(relevance, coverage, deep): what the fused list gains over the original ranking."""
        k, depth = f"ndcg@{self.cfg.relevance_k}", f"ndcg@{self.plan.depth}"
        after, before = self._metrics(qid, fused), self._original_metrics_of(qid)
        if self.cfg.relevance_on == "fused":
            relevance = after[k] - before[k]
        else:
            own = [self._metrics(qid, ids)[k] for ids, _ in exp_lists]
            relevance = sum(own) / len(own) if own else 0.0
        coverage = after[f"recall@{self.cfg.coverage_k}"] - before[f"recall@{self.cfg.coverage_k}"]
        return relevance, coverage, after[depth] - before[depth]

    def _judged_parts(self, qids: list[str], fused: list[torch.Tensor]) -> list[tuple[float, float, float]]:
        """(relevance, coverage, deep) as :meth:`_labelled_parts` computes them, with the judge's score in [0, 1]
        of every listed product as its gain: DCG@relevance_k and DCG@depth differences over the ideal DCG of the
        original's own top products, and the gain in judged-relevant mass of the top coverage_k over that of the
        original's (a soft recall). Scores are cached per (query, product); one model call for the batch."""
        k, cov, depth = self.cfg.relevance_k, self.cfg.coverage_k, self.plan.depth
        queries = [self.dataset.queries[q] for q in qids]
        originals = [ranking for _, ranking in self.original_results(qids)]
        rows = [o[:depth].tolist() for o in originals] + [f[:depth].tolist() for f in fused]
        scores = self.judge.score_many(queries + queries, rows, self.dataset.product_texts)
        out = []
        for before, after in zip(scores[: len(qids)], scores[len(qids):]):
            ideal = before.sort(descending=True).values
            parts = [(_dcg(after, n) - _dcg(before, n)) / max(_dcg(ideal, n), 1e-6) for n in (k, depth)]
            coverage = (after[:cov].sum() - before[:cov].sum()).item() / max(before[:cov].sum().item(), 1.0)
            out.append((parts[0], coverage, parts[1]))
        return out

    def _label_free_parts(self, qid, ranking, exp_ids) -> tuple[float, float]:
        if not exp_ids:
            return 0.0, 0.0
        query_vec = self._query_embedding(qid)
        catalog = self.plan.expansion_engine.embeddings
        k = self.cfg.relevance_k
        top = torch.stack([ids[:k] for ids in exp_ids])  # [n_expansions, k], -1 where an expansion found fewer
        found = top >= 0
        sims = (catalog[top.clamp(min=0).to(catalog.device)] @ query_vec.to(catalog.device)).cpu()
        sims = torch.where(found, sims, 0.0)  # an empty slot is no result, not catalog row 0
        seen = set(ranking[: self.cfg.coverage_k].tolist())
        is_new = torch.tensor([[i not in seen for i in row] for row in top.tolist()]) & found
        return sims.mean().item(), (sims * is_new).sum().item() / sims.numel()

    def _query_embedding(self, qid: str) -> torch.Tensor:
        """The original query's vector ``[d]``, encoded once: all G completions of a group share it."""
        if qid not in self._query_vectors:
            encoder = self.plan.expansion_engine.encoder
            self._query_vectors[qid] = encoder.encode([self.dataset.queries[qid]])[0]
        return self._query_vectors[qid]
