"""What a step learns from: which queries (the sampler), their scored rollouts, and the group surgery that
dynamic sampling needs."""
from __future__ import annotations

import random
from dataclasses import dataclass, field

import torch

from grpo.checkpoint import TrainingState

from policy import PromptConfig, Rollout, build_prompt
from reward import RewardParts


class QuerySampler:
    """Endless, seeded, resumable passes over the training query ids.

    Its position lives in the :class:`TrainingState`, so a checkpoint resumes the data order exactly."""

    def __init__(self, qids: list[str], seed: int, state: TrainingState):
        if not qids:
            raise ValueError("no training queries (are the split and the judgments empty?)")
        self.qids, self.seed, self.state = sorted(qids), seed, state
        if not state.data_order:
            self._shuffle()

    def _shuffle(self) -> None:
        order = list(self.qids)
        random.Random(self.seed + self.state.epoch).shuffle(order)
        self.state.data_order, self.state.data_cursor = order, 0

    def take(self, n: int) -> list[str]:
        out = []
        while len(out) < n:
            if self.state.data_cursor >= len(self.state.data_order):
                self.state.epoch += 1
                self._shuffle()
            out.append(self.state.data_order[self.state.data_cursor])
            self.state.data_cursor += 1
        return out


def make_prompts(tokenizer, reward, qids: list[str], prompt_cfg: PromptConfig
                 ) -> tuple[list[str], list[str], list[list[str]]]:
    """Query texts, chat prompts and the context titles they show, one per query id: how GRPO, the warm start
    and validation all prompt the policy."""
    contexts = reward.context(qids, prompt_cfg.context_k)
    queries = [reward.dataset.queries[q] for q in qids]
    prompts = [build_prompt(tokenizer, shown_query(reward, q, c), c, prompt_cfg) for q, c in zip(queries, contexts)]
    return queries, prompts, contexts


def shown_query(reward, query: str, titles: list[str]) -> str:
    """The query as the policy's prompt shows it next to ``titles``: the reward's (typos fixed under ``[engine]
    correct_spelling``), or as typed for a reward without a ``shown_query``."""
    return reward.shown_query(query, titles) if hasattr(reward, "shown_query") else query


@dataclass
class StepBatch:
    """One step's rollouts, scored: what the update phase consumes."""

    qids: list[str]  # [n_groups]
    queries: list[str]  # [n_groups]
    prompts: list[str]  # [n_groups]
    contexts: list[list[str]]  # [n_groups][context_k]
    rollout: Rollout  # B = n_groups * G rows
    parts: RewardParts  # [B]
    advantages: torch.Tensor  # [B]
    loss_mask: torch.Tensor  # [B, T]
    zero_std_fraction: float = 0.0
    stats: dict[str, float] = field(default_factory=dict)


def select_groups(batch: StepBatch, groups: list[int], G: int) -> StepBatch:
    """The sub-batch made of the given groups (each ``G`` consecutive rows)."""
    rows = torch.tensor([g * G + j for g in groups for j in range(G)], dtype=torch.long)
    r = batch.rollout
    rollout = Rollout(
        prompt_ids=[r.prompt_ids[g] for g in groups], completion_ids=r.completion_ids[rows],
        completion_mask=r.completion_mask[rows], sample_logprobs=r.sample_logprobs[rows],
        truncated=r.truncated[rows], group_size=G, texts=[r.texts[i] for i in rows.tolist()],
    )
    p = batch.parts
    idx = rows.tolist()
    parts = RewardParts(p.relevance[rows], p.coverage[rows], p.deep[rows], p.rules[rows], p.total[rows],
                        [p.violations[i] for i in idx], [p.expansions_used[i] for i in idx])
    return StepBatch([batch.qids[g] for g in groups], [batch.queries[g] for g in groups],
                     [batch.prompts[g] for g in groups],
                     [batch.contexts[g] for g in groups], rollout, parts, batch.advantages[rows],
                     batch.loss_mask[rows], batch.zero_std_fraction)


def concat_batches(a: StepBatch, b: StepBatch, G: int) -> StepBatch:
    """Groups of ``a`` then of ``b``; completions are right-padded to the longer of the two."""
    def pad_cat(x: torch.Tensor, y: torch.Tensor, value) -> torch.Tensor:
        width = max(x.shape[1], y.shape[1])
        pad = lambda t: torch.nn.functional.pad(t, (0, width - t.shape[1]), value=value)  # noqa: E731
        return torch.cat([pad(x), pad(y)])

    ra, rb = a.rollout, b.rollout
    rollout = Rollout(
        prompt_ids=ra.prompt_ids + rb.prompt_ids,
        completion_ids=pad_cat(ra.completion_ids, rb.completion_ids, 0),  # masked out: any id will do
        completion_mask=pad_cat(ra.completion_mask, rb.completion_mask, 0),
        sample_logprobs=pad_cat(ra.sample_logprobs, rb.sample_logprobs, 0.0),
        truncated=torch.cat([ra.truncated, rb.truncated]), group_size=G, texts=ra.texts + rb.texts,
    )
    pa, pb = a.parts, b.parts
    parts = RewardParts(*(torch.cat([getattr(pa, n), getattr(pb, n)])
                          for n in ("relevance", "coverage", "deep", "rules", "total")),
                        pa.violations + pb.violations, pa.expansions_used + pb.expansions_used)
    return StepBatch(a.qids + b.qids, a.queries + b.queries, a.prompts + b.prompts, a.contexts + b.contexts,
                     rollout, parts,
                     torch.cat([a.advantages, b.advantages]), pad_cat(a.loss_mask, b.loss_mask, 0.0),
                     a.zero_std_fraction)
