"""Supervised fine-tuning on the warm start's picks (:mod:`grpo.distill` chooses them): each target the kept
expansions, one per line, ending in EOS; the loss is the mean negative log-likelihood of the target tokens."""
from __future__ import annotations

import random
from typing import TYPE_CHECKING

import torch
from tqdm.auto import tqdm

from policy import completion_logprobs
from policy.precision import autocast
from grpo.schedule import adamw

if TYPE_CHECKING:
    from grpo.distill import DistillConfig, DistillExample


def _target_ids(tokenizer, target: str, budget: int) -> list[int]:
    """Token ids of ``target`` within ``budget``: whole lines are dropped from the end, so no pick teaches
    the policy to stop in the middle of a query; a single overlong line is cut."""
    lines = target.split("\n")
    while True:
        ids = tokenizer("\n".join(lines), add_special_tokens=False)["input_ids"]
        if len(ids) <= budget or len(lines) == 1:
            return ids[:budget]
        lines.pop()


def _encode(tokenizer, examples: list[DistillExample], eos_id: int, max_len: int):
    """Prompt ids (one per example) and right-padded target ids/mask ``[n, T]``, each target ending in EOS."""
    prompts = [torch.tensor(tokenizer(e.prompt, add_special_tokens=False)["input_ids"]) for e in examples]
    targets = [_target_ids(tokenizer, e.target, max_len - 1) + [eos_id] for e in examples]
    width = max(len(t) for t in targets)
    ids = torch.full((len(targets), width), eos_id, dtype=torch.long)
    mask = torch.zeros(len(targets), width)
    for i, t in enumerate(targets):
        ids[i, :len(t)] = torch.tensor(t)
        mask[i, :len(t)] = 1.0
    return prompts, ids, mask


def sft_loss(model, prompt_ids: list[torch.Tensor], target_ids: torch.Tensor,
             target_mask: torch.Tensor) -> torch.Tensor:
    """Mean negative log-likelihood per target token; logits only at target positions."""
    logprobs = completion_logprobs(model, prompt_ids, target_ids, target_mask, group_size=1)
    mask = target_mask.to(logprobs.device)
    return -(logprobs * mask).sum() / mask.sum().clamp(min=1.0)


def finetune(model, tokenizer, examples: list[DistillExample], cfg: DistillConfig) -> list[float]:
    """Supervised epochs over the picks, in a seeded order (``cfg.precision`` resolved: :func:`distill` resolves
    ``auto``); returns the mean loss of each epoch."""
    if not examples:
        raise ValueError("no example beat min_reward: nothing to distill (more samples or queries may help)")
    eos_id = tokenizer.eos_token_id if tokenizer.eos_token_id is not None else tokenizer.pad_token_id
    prompts, ids, mask = _encode(tokenizer, examples, eos_id, cfg.max_completion_length)
    optimizer = adamw([p for p in model.parameters() if p.requires_grad], cfg.optim, cfg.learning_rate,
                      (0.9, 0.999), cfg.weight_decay)
    order, losses = list(range(len(examples))), []
    model.train()
    for epoch in range(cfg.epochs):
        random.Random(cfg.seed + epoch).shuffle(order)
        total = 0.0
        for start in tqdm(range(0, len(order), cfg.batch_size), desc=f"sft epoch {epoch + 1}", dynamic_ncols=True):
            rows = order[start:start + cfg.batch_size]
            width = int(mask[rows].sum(1).max().item())
            with autocast(cfg.precision, next(model.parameters()).device):
                loss = sft_loss(model, [prompts[r] for r in rows], ids[rows, :width], mask[rows, :width])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.max_grad_norm)
            optimizer.step()
            total += loss.item() * len(rows)
        losses.append(total / len(order))
        print(f"sft epoch {epoch + 1}: loss {losses[-1]:.4f}")
    model.eval()
    return losses
