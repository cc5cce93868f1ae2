"""Log-probabilities of sampled completions under a policy (with or without grad).

:func:`completion_logprobs` is the training-time scorer. It saves work in two ways:

1. Logits are computed only at the T positions that predict completion tokens (the last prompt
   position and the completion positions except the last), instead of at all ``P + T`` positions;
   with a ~49k vocabulary the LM head and log-softmax dominate memory otherwise.
2. Each group's prompt runs through the transformer once: the group is one sequence, its prompt and then its G
   completions, each completion seeing the prompt and its own past (:func:`policy.shared_prompt.group_sequences`).
   Gradients flow back into the shared prompt activations. It needs transformers' sdpa attention and full
   attention in every layer; otherwise each row runs as one concatenated ``prompt + completion`` sequence, still
   with logits only at the completion positions. Results are identical; only the prompt sharing is lost.

:func:`naive_completion_logprobs` is the plain reference: full forward, full logits, log-softmax
everywhere, gather.
"""
from __future__ import annotations

import torch
from torch import nn

from ._batching import effective_temperature, left_pad, model_device, positions_from_mask, token_logprobs
from .shared_prompt import group_sequences, group_sequences_supported


def _check_inputs(prompt_ids: list[torch.Tensor], completion_ids: torch.Tensor, completion_mask: torch.Tensor,
                  group_size: int) -> None:
    if group_size < 1:
        raise ValueError("group_size must be >= 1")
    if completion_ids.dim() != 2 or completion_mask.shape != completion_ids.shape:
        raise ValueError(f"completion_ids and completion_mask must both be [B, T], got "
                         f"{tuple(completion_ids.shape)} and {tuple(completion_mask.shape)}")
    if completion_ids.shape[0] != len(prompt_ids) * group_size:
        raise ValueError(f"B={completion_ids.shape[0]} != n_groups={len(prompt_ids)} * G={group_size}")


def _pad_id(model: nn.Module) -> int:
    """Filler for left padding; its value is irrelevant because it is always masked out."""
    pad = getattr(model.config, "pad_token_id", None)
    return int(pad) if pad is not None else 0


def _concat_inputs(model: nn.Module, prompt_ids: list[torch.Tensor], completion_ids: torch.Tensor,
                   group_size: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, int]:
    """Per-row ``[left-padded prompt | completion]``: ids, attention mask, position ids ``[B, P + T]``, and ``P``.

    Completion padding stays attendable: it comes after every real token, so causal attention
    never lets a real token see it, and its own outputs are masked out by the caller.
    """
    device = model_device(model)
    ids, attn = left_pad(prompt_ids, _pad_id(model), device)  # [n, P]
    ids, attn = ids.repeat_interleave(group_size, 0), attn.repeat_interleave(group_size, 0)
    completion_ids = completion_ids.to(device)
    full_ids = torch.cat([ids, completion_ids], dim=1)
    full_attn = torch.cat([attn, torch.ones_like(completion_ids)], dim=1)
    return full_ids, full_attn, positions_from_mask(full_attn), ids.shape[1]


def _concat_hidden(model: nn.Module, prompt_ids: list[torch.Tensor], completion_ids: torch.Tensor,
                   group_size: int) -> torch.Tensor:
    """Hidden states ``[B, T, H]`` at the positions predicting completion tokens (no prompt sharing)."""
    ids, attn, pos, prompt_len = _concat_inputs(model, prompt_ids, completion_ids, group_size)
    hidden = model.base_model(input_ids=ids, attention_mask=attn, position_ids=pos, use_cache=False).last_hidden_state
    # Left padding puts the last prompt token at column P - 1 for every row.
    return hidden[:, prompt_len - 1: prompt_len - 1 + completion_ids.shape[1]]


def _group_sequence_hidden(model: nn.Module, prompt_ids: list[torch.Tensor], completion_ids: torch.Tensor,
                           group_size: int) -> torch.Tensor:
    """Hidden states ``[B, T, H]`` predicting completion tokens, each group run as one sequence ``[P + G * T]``.

    A completion's first token is predicted at its prompt's last position, the others at its own previous
    token. No KV cache: the same pass runs with grad, under gradient checkpointing and compiled."""
    device = model_device(model)
    completion_ids = completion_ids.to(device)
    ids, positions, mask = group_sequences(prompt_ids, completion_ids, group_size, _pad_id(model))
    hidden = model.base_model(input_ids=ids, attention_mask=mask, position_ids=positions,
                              use_cache=False).last_hidden_state  # [n, P + G * T, H]
    n, T, H = len(prompt_ids), completion_ids.shape[1], hidden.shape[-1]
    prompt_len = ids.shape[1] - group_size * T
    completions = hidden[:, prompt_len:].reshape(n, group_size, T, H)
    first = hidden[:, prompt_len - 1].reshape(n, 1, 1, H).expand(n, group_size, 1, H)
    return torch.cat([first, completions[:, :, :-1]], dim=2).reshape(n * group_size, T, H)


LOGIT_CHUNK_ELEMENTS = 1 << 22
"""Most logits (rows x T x V) that one log-softmax runs on: 16 MB in fp32. Over one ``[32, 32, 49152]`` block (200 MB,
out of cache, fresh pages) a subtraction took 267 ms in a step's profile; 16 warm 2-row slices take 27 ms on the
2-core CPU (experiments/runs/2026-11-28_bench_grpo_prealloc)."""


def _head_logprobs(head: nn.Module, hidden: torch.Tensor, tokens: torch.Tensor, temperature: float,
                   return_entropy: bool):
    """:func:`token_logprobs` of ``head(hidden)``: ``hidden [b, T, H]``, ``tokens [b, T]`` -> ``[b, T]`` (and entropy).

    The LM head runs once, as one large product (the weight gradient too); the fp32 normalisation runs on row
    slices of its logits of at most :data:`LOGIT_CHUNK_ELEMENTS`."""
    logits = head(hidden)  # [b, T, V]
    rows = max(1, LOGIT_CHUNK_ELEMENTS // (logits.shape[1] * logits.shape[2]))
    parts = [token_logprobs(chunk, t, temperature, return_entropy)
             for chunk, t in zip(logits.split(rows), tokens.split(rows))]
    if not return_entropy:
        return torch.cat(parts)
    return torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])


def completion_logprobs(
    model: nn.Module,
    prompt_ids: list[torch.Tensor],
    completion_ids: torch.Tensor,
    completion_mask: torch.Tensor,
    group_size: int,
    temperature: float = 1.0,
    micro_batch_groups: int | None = None,
    return_entropy: bool = False,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """``FloatTensor [B, T]``: ``log_softmax(logits / temperature)`` of each completion token, 0 where masked.

    ``prompt_ids``: one ``[P_g]`` per group; ``completion_ids``/``completion_mask``: ``[B, T]`` with
    row ``b`` in group ``b // group_size`` (the layout of :class:`policy.Rollout`). Differentiable
    when grad is enabled; wrap reference-model calls in ``torch.inference_mode()``. Temperature 0
    means 1 (same convention as sampling). ``micro_batch_groups`` bounds how many groups go through
    the model at once; note autograd still keeps every micro-batch's activations until backward.
    With ``return_entropy``, also returns the (detached) entropy ``[B, T]`` of each predicting
    distribution, 0 where masked: a statistic, computed from logits that exist anyway.
    """
    _check_inputs(prompt_ids, completion_ids, completion_mask, group_size)
    head = model.get_output_embeddings()
    step = micro_batch_groups or len(prompt_ids)
    parts, entropies = [], []
    for start in range(0, len(prompt_ids), step):
        groups = prompt_ids[start:start + step]
        rows = completion_ids[start * group_size:(start + len(groups)) * group_size]
        shared = group_sequences_supported(model, group_size, max(len(p) for p in groups), rows.shape[1])
        hidden = (_group_sequence_hidden if shared else _concat_hidden)(model, groups, rows, group_size)  # [b, T, H]
        picked = _head_logprobs(head, hidden, rows.to(hidden.device), temperature, return_entropy)
        if return_entropy:
            picked, entropy = picked
            entropies.append(entropy)
        parts.append(picked)
    mask = completion_mask.to(parts[0].device).bool()
    logprobs = torch.where(mask, torch.cat(parts, dim=0), 0.0)
    if not return_entropy:
        return logprobs
    return logprobs, torch.where(mask, torch.cat(entropies, dim=0), 0.0)


def naive_completion_logprobs(model: nn.Module, prompt_ids: list[torch.Tensor], completion_ids: torch.Tensor,
                              completion_mask: torch.Tensor, group_size: int, temperature: float = 1.0,
                              micro_batch_groups: int | None = None) -> torch.Tensor:
    """Reference for :func:`completion_logprobs`: each row is ``prompt + completion``, full logits over
    all ``P + T`` positions, log-softmax everywhere, then gather the completion tokens. ``[B, T]``."""
    _check_inputs(prompt_ids, completion_ids, completion_mask, group_size)
    step = micro_batch_groups or len(prompt_ids)
    parts = []
    for start in range(0, len(prompt_ids), step):
        groups = prompt_ids[start:start + step]
        rows = completion_ids[start * group_size:(start + len(groups)) * group_size]
        ids, attn, pos, prompt_len = _concat_inputs(model, groups, rows, group_size)
        logits = model(input_ids=ids, attention_mask=attn, position_ids=pos, use_cache=False).logits  # [b, P+T, V]
        all_logprobs = torch.log_softmax(logits.float() / effective_temperature(temperature), dim=-1)
        predicting = all_logprobs[:, prompt_len - 1: -1]  # [b, T, V]
        parts.append(predicting.gather(-1, ids[:, prompt_len:].unsqueeze(-1)).squeeze(-1))
    logprobs = torch.cat(parts, dim=0)
    mask = completion_mask.to(logprobs.device).bool()
    return torch.where(mask, logprobs, torch.zeros_like(logprobs))


class CompletionScorer(nn.Module):
    """``forward`` = :func:`completion_logprobs` of the wrapped model, so that DDP sees the forward pass.

    ``completion_logprobs`` calls the model's inner modules (the base model and the LM head) directly. Through a
    ``DistributedDataParallel`` wrapper of the *model*, that path would bypass DDP's forward and its gradients
    would never be synchronised; wrapping this module instead puts the whole scoring under DDP's hooks.
    """

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, prompt_ids: list[torch.Tensor], completion_ids: torch.Tensor, completion_mask: torch.Tensor,
                group_size: int, temperature: float = 1.0, return_entropy: bool = False):
        return completion_logprobs(self.model, prompt_ids, completion_ids, completion_mask, group_size,
                                   temperature=temperature, return_entropy=return_entropy)
