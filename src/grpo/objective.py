"""The whole GRPO objective, as pure tensor functions.

Shapes: ``B`` completions in a (micro-)batch, ``T`` completion tokens (right-padded), ``G`` completions
per prompt. ``mask`` is 1 on real completion tokens (EOS included) and 0 on padding; padded positions may
hold any value, including NaN-free garbage, and never reach the loss.

Every loss normaliser lives in :func:`aggregate_loss`. Except ``bnpo`` (TRL's per-micro-batch definition),
gradient accumulation gives exactly the same update as one big batch: each micro-batch is normalised by
totals of the *whole* batch.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

SCALE_REWARDS = ("group", "batch", "none")
LOSS_TYPES = ("grpo", "bnpo", "dapo", "dr_grpo")
KL_CLAMP = 10.0
"""Bound of the per-token k3 KL (verl's ``low_var_kl``): at a log ratio of -30 it would be 1e13."""
KL_ESTIMATORS = ("k1", "k2", "k3")


def group_advantages(
    rewards: torch.Tensor, group_size: int, scale_rewards: str = "group", eps: float = 1e-4
) -> torch.Tensor:
    """Rewards ``[B]`` -> advantages ``[B]``: subtract the group mean, then divide by a std.

    ``scale_rewards``: ``"group"`` divides by each group's std (GRPO), ``"batch"`` by the std of the whole
    batch (more robust when some groups are nearly constant), ``"none"`` does not divide (Dr. GRPO: the
    std favours too-easy and too-hard prompts). std is the unbiased one, as in TRL, so numbers match it.
    An all-equal group gets advantage 0 whatever the scaling.
    """
    if scale_rewards not in SCALE_REWARDS:
        raise ValueError(f"scale_rewards must be one of {SCALE_REWARDS}, got {scale_rewards!r}")
    if rewards.dim() != 1 or rewards.numel() % group_size:
        raise ValueError(f"rewards must be [n_groups * {group_size}], got shape {tuple(rewards.shape)}")
    grouped = rewards.view(-1, group_size)
    centered = (grouped - grouped.mean(dim=1, keepdim=True)).view(-1)
    if scale_rewards == "none":
        return centered
    if scale_rewards == "group":
        std = grouped.std(dim=1, keepdim=True).expand_as(grouped).reshape(-1)
    else:
        std = rewards.std().expand_as(rewards)
    # A constant group (or batch) has nothing to prefer: exactly 0, also when eps is 0. A NaN reward gives a
    # NaN std, which must stay NaN (so the trainer's guard sees it), not pass as a constant group.
    return torch.where(std == 0, torch.zeros_like(centered), centered / (std + eps))


def zero_std_groups(rewards: torch.Tensor, group_size: int, tol: float = 1e-8) -> torch.Tensor:
    """Rewards ``[B]`` -> ``[n_groups]`` bool: groups whose rewards are all equal (they carry no signal)."""
    grouped = rewards.view(-1, group_size)
    return (grouped.max(dim=1).values - grouped.min(dim=1).values) <= tol


@dataclass
class SurrogateOutput:
    per_token_loss: torch.Tensor  # [B, T]
    is_low_clipped: torch.Tensor  # [B, T] bool: ratio < 1 - epsilon where the advantage is negative
    is_high_clipped: torch.Tensor  # [B, T] bool: ratio > 1 + epsilon_high where the advantage is positive


def clipped_surrogate(
    logprobs: torch.Tensor,
    old_logprobs: torch.Tensor,
    advantages: torch.Tensor,
    epsilon: float = 0.2,
    epsilon_high: float | None = None,
) -> SurrogateOutput:
    """PPO's clipped objective per token, negated to a loss.

    logprobs, old_logprobs: ``[B, T]``; advantages: ``[B]``. ``epsilon_high`` > ``epsilon`` (DAPO's
    clip-higher) lets unlikely tokens with positive advantage grow faster, which keeps entropy up.
    Where the clip is active the loss is constant in ``logprobs``, so those tokens get zero gradient.
    """
    epsilon_high = epsilon if epsilon_high is None else epsilon_high
    ratio = torch.exp(logprobs - old_logprobs)
    adv = advantages.unsqueeze(1)
    unclipped = ratio * adv
    clipped = torch.clamp(ratio, 1.0 - epsilon, 1.0 + epsilon_high) * adv
    return SurrogateOutput(
        per_token_loss=-torch.min(unclipped, clipped),
        is_low_clipped=(ratio < 1.0 - epsilon) & (adv < 0),
        is_high_clipped=(ratio > 1.0 + epsilon_high) & (adv > 0),
    )


def kl_penalty(logprobs: torch.Tensor, ref_logprobs: torch.Tensor, estimator: str = "k3") -> torch.Tensor:
    """Per-token estimate of KL(policy || reference), ``[B, T]``, from the sampled tokens' log-probs.

    k1 = log r (unbiased, can be negative), k2 = (log r)^2 / 2 (low variance, biased), k3 = r' - log r' - 1
    with r' = p_ref / p (unbiased and always >= 0; the GRPO paper's choice). See Schulman, "Approximating
    KL divergence". k3 is clamped as verl clamps it: log r' to [-20, 20] and the estimate to [-KL_CLAMP,
    KL_CLAMP], so one token far from the reference cannot blow up the loss (it gets no gradient there).
    """
    log_ratio = logprobs - ref_logprobs
    if estimator == "k1":
        return log_ratio
    if estimator == "k2":
        return 0.5 * log_ratio.pow(2)
    if estimator == "k3":
        ref_log_ratio = torch.clamp(-log_ratio, min=-20.0, max=20.0)
        return torch.clamp(torch.exp(ref_log_ratio) - ref_log_ratio - 1.0, min=-KL_CLAMP, max=KL_CLAMP)
    raise ValueError(f"kl estimator must be one of {KL_ESTIMATORS}, got {estimator!r}")


@dataclass(frozen=True)
class LossNormalizer:
    """Totals of the whole optimisation batch (all accumulation micro-batches together).

    num_sequences: completions in the batch; num_tokens: unmasked completion tokens in the batch;
    max_completion_length: the generation cap, Dr. GRPO's constant normaliser; num_micro_batches: the
    accumulation steps, which ``bnpo`` divides by (as TRL divides by its gradient accumulation steps).
    """

    num_sequences: int
    num_tokens: int
    max_completion_length: int
    num_micro_batches: int = 1


def aggregate_loss(
    per_token_loss: torch.Tensor, mask: torch.Tensor, loss_type: str, norm: LossNormalizer
) -> torch.Tensor:
    """``[B, T]`` per-token losses -> this micro-batch's share of the batch loss (a scalar).

    Definitions follow TRL's ``GRPOTrainer``:

    - ``grpo``: mean over sequences of each sequence's token mean. Long completions weigh less per token.
    - ``dapo``: mean over all tokens of the whole batch. Every token weighs the same.
    - ``bnpo``: mean over the tokens of *this micro-batch*, divided by the number of micro-batches. Equal to
      ``dapo`` with one micro-batch; otherwise a token's weight depends on how the batch was split.
    - ``dr_grpo``: sum over tokens / (num_sequences * max_completion_length). A constant normaliser, so
      there is no length bias at all.

    For all but ``bnpo``, summing the shares of all micro-batches gives the full-batch loss exactly, because
    the denominators come from ``norm`` (the whole batch), never from the micro-batch.
    """
    mask = mask.to(per_token_loss.dtype)
    # where(), not multiply: garbage (even inf) at padded positions must not leak in as inf * 0 = nan.
    masked = torch.where(mask.bool(), per_token_loss, torch.zeros_like(per_token_loss))
    if loss_type == "grpo":
        per_sequence = masked.sum(dim=1) / mask.sum(dim=1).clamp(min=1.0)
        return per_sequence.sum() / norm.num_sequences
    if loss_type == "dapo":
        return masked.sum() / max(norm.num_tokens, 1)
    if loss_type == "bnpo":
        return masked.sum() / mask.sum().clamp(min=1.0) / norm.num_micro_batches
    if loss_type == "dr_grpo":
        return masked.sum() / (norm.num_sequences * norm.max_completion_length)
    raise ValueError(f"loss_type must be one of {LOSS_TYPES}, got {loss_type!r}")


def masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of ``values [B, T]`` over unmasked positions (0 when there are none); for statistics."""
    selected = torch.where(mask.bool(), values, torch.zeros_like(values))
    return selected.sum() / mask.sum().clamp(min=1)


def grpo_loss(
    logprobs: torch.Tensor,
    old_logprobs: torch.Tensor,
    ref_logprobs: torch.Tensor | None,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    norm: LossNormalizer,
    *,
    loss_type: str = "grpo",
    epsilon: float = 0.2,
    epsilon_high: float | None = None,
    beta: float = 0.0,
    kl_estimator: str = "k3",
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The GRPO loss of one micro-batch: clipped surrogate + beta * KL, aggregated by ``loss_type``.

    All inputs ``[B, T]`` except ``advantages [B]``. ``ref_logprobs`` may be None only when ``beta`` == 0.
    Returns the loss share and detached per-micro-batch statistics (token means over ``mask``).
    """
    surrogate = clipped_surrogate(logprobs, old_logprobs, advantages, epsilon, epsilon_high)
    per_token = surrogate.per_token_loss
    stats: dict[str, torch.Tensor] = {}
    if beta != 0.0:
        if ref_logprobs is None:
            raise ValueError("beta != 0 needs reference log-probs")
        kl = kl_penalty(logprobs, ref_logprobs, kl_estimator)
        per_token = per_token + beta * kl
        stats["kl"] = masked_mean(kl.detach(), mask)
    loss = aggregate_loss(per_token, mask, loss_type, norm)
    stats["clip_ratio/low"] = masked_mean(surrogate.is_low_clipped.float(), mask)
    stats["clip_ratio/high"] = masked_mean(surrogate.is_high_clipped.float(), mask)
    return loss, stats
