"""The validation reward measured before and after training: what the run's result reports."""
from __future__ import annotations

import torch

from grpo.config import GRPOConfig
from grpo.distributed import Distributed
from grpo.schedule import group_generators
from policy import PromptConfig, parse_completion, sample_groups
from reward import PART_NAMES as PARTS, RewardParts, SearchReward


def score_samples(model, tokenizer, reward: SearchReward, prompt_cfg: PromptConfig, cfg: GRPOConfig,
                  qids: list[str], prompts: list[str], n: int, temperature: float, generator=None) -> RewardParts:
    """Reward parts ``[len(qids) * n]`` of ``n`` completions per prompt."""
    # Greedy answers are decoded as served, with distinct lines (policy.lines); samples as in training.
    distinct = [reward.dataset.queries[q] for q in qids] if temperature == 0 else None
    rollout = sample_groups(model, tokenizer, prompts, n, max_new_tokens=cfg.max_completion_length,
                            temperature=temperature, top_p=cfg.top_p, generator=generator, distinct_from=distinct)
    expansions = [parse_completion(t, prompt_cfg.num_expansions) for t in rollout.texts]
    return reward.score([q for q in qids for _ in range(n)], expansions)


@torch.inference_mode()
def validation_reward(model, tokenizer, reward: SearchReward, prompt_cfg: PromptConfig, cfg: GRPOConfig,
                      qids: list[str], prompts: list[str], first_query: int = 0,
                      dist: Distributed | None = None) -> dict[str, float]:
    """Mean reward parts on the validation queries, two ways.

    ``valid/reward``: greedy expansions with distinct lines, what serving gets by default. ``valid/reward_sampled``:
    ``eval_samples_per_query`` samples at the training temperature, the quantity GRPO optimises; fixed
    per-query seeds make the before/after numbers comparable (and leave the training RNG untouched).
    With several processes each scores its share of the queries (``first_query``: the first one's index among
    all); the means are over all of them.
    """
    dist = dist or Distributed()
    model.eval()
    # A process whose share is empty (fewer queries than processes) still joins every sum.
    parts = score_samples(model, tokenizer, reward, prompt_cfg, cfg, qids, prompts, 1, temperature=0.0) if qids \
        else None
    metrics = means(parts, "valid/reward", dist)
    if cfg.eval_samples_per_query > 0:
        device = next(model.parameters()).device
        generators = group_generators(cfg.seed + 1, 0, 0, first_query, len(qids), device)
        parts = score_samples(model, tokenizer, reward, prompt_cfg, cfg, qids, prompts, cfg.eval_samples_per_query,
                              temperature=cfg.temperature, generator=generators) if qids else None
        metrics.update(means(parts, "valid/reward_sampled", dist))
    return metrics


def means(parts: RewardParts | None, prefix: str, dist: Distributed) -> dict[str, float]:
    """``{prefix/part: mean}`` over the completions of every process (``parts`` None: none on this one)."""
    local = {n: 0.0 if parts is None else getattr(parts, n).sum().item() for n in PARTS}
    sums = dist.sum_values(local | {"count": 0 if parts is None else len(parts.total)})
    return {f"{prefix}/{n}": sums[n] / sums["count"] for n in PARTS}


def reward_summary(metrics: dict[str, float]) -> str:
    """The progress line's view of :func:`validation_reward`."""
    nan = float("nan")
    return (f"greedy {metrics.get('valid/reward/total', nan):.4f}, "
            f"sampled {metrics.get('valid/reward_sampled/total', nan):.4f}")
