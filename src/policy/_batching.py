"""Small tensor helpers shared by sampling and log-prob scoring (internal)."""
from __future__ import annotations

import inspect

import torch
from torch import nn


def cache_kwarg(module: nn.Module) -> str:
    """Name of the KV-cache argument of a model's or a decoder layer's forward: ``cache`` in transformers >= 5.x,
    ``past_key_values`` (a model) or ``past_key_value`` (a layer) before."""
    names = inspect.signature(module.forward).parameters
    return next((n for n in ("cache", "past_key_value") if n in names), "past_key_values")


def new_cache(model: nn.Module):
    """An empty ``DynamicCache`` for ``model`` (we hold the object, so we never need to read it back)."""
    from transformers import DynamicCache

    return DynamicCache(config=model.config)


def model_device(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


def effective_temperature(temperature: float) -> float:
    """Temperature used for log-probs: greedy (0) is scored with the unscaled distribution (T=1)."""
    if temperature < 0:
        raise ValueError(f"temperature must be >= 0, got {temperature}")
    return 1.0 if temperature == 0 else float(temperature)


def left_pad(seqs: list[torch.Tensor], pad_id: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Left-pad 1-D token tensors ``[P_i]`` into ``ids [N, P]`` and ``attention_mask [N, P]`` (long).

    Left padding puts every sequence's last token at column ``P - 1``, so "the position that predicts
    the next token" is the same column for every row.
    """
    width = max(int(s.numel()) for s in seqs)
    ids = torch.full((len(seqs), width), pad_id, dtype=torch.long, device=device)
    mask = torch.zeros((len(seqs), width), dtype=torch.long, device=device)
    for row, seq in enumerate(seqs):
        if seq.numel() == 0:
            raise ValueError("empty prompt")
        ids[row, width - seq.numel():] = seq.to(device)
        mask[row, width - seq.numel():] = 1
    return ids, mask


def positions_from_mask(mask: torch.Tensor) -> torch.Tensor:
    """Position ids ``[N, P]`` that restart at 0 on each row's first real token (pads get 0)."""
    return (mask.cumsum(-1) - 1).clamp(min=0)


def scaled_logits(logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """``logits / temperature`` in fp32 (greedy, 0, scores as 1); at 1 no division, which would copy a
    ``[..., V]`` tensor and add another pass in backward."""
    t = effective_temperature(temperature)
    logits = logits.float()
    return logits if t == 1.0 else logits / t


def token_logprobs(logits: torch.Tensor, tokens: torch.Tensor, temperature: float, return_entropy: bool = False):
    """``log_softmax(logits / temperature)`` at ``tokens``: logits ``[..., V]``, tokens ``[...]`` -> ``[...]``.

    Uses gather - logsumexp so no second ``[..., V]`` log-prob tensor is materialised. With ``return_entropy``,
    also the (detached) entropy ``[...]`` of each distribution, from the same normaliser:
    ``H = log Z - sum(p * scaled logits)``.
    """
    logits = scaled_logits(logits, temperature)
    log_z = torch.logsumexp(logits, dim=-1)
    picked = logits.gather(-1, tokens.unsqueeze(-1)).squeeze(-1) - log_z
    if not return_entropy:
        return picked
    with torch.no_grad():
        scaled, log_z = logits.detach(), log_z.detach()
        probs = torch.exp(scaled - log_z.unsqueeze(-1))
        entropy = log_z - (probs * scaled).sum(-1)  # element-wise: stays fp32 under autocast, as a bmm would not
    return picked, entropy
