"""Group sampling for GRPO: G completions per prompt, sharing one prompt forward pass.

Each prompt is encoded once (batch 1 per prompt, several prompts left-padded into one batch), and the G samples
are decoded together by a hand-written loop, attending to one copy of their prompt's KV cache
(:mod:`policy.shared_prompt`; without sdpa attention, to a copy repeated G times along the batch axis). This
avoids recomputing the (long) prompt G times, which dominates the cost of ``model.generate(num_return_sequences=G)``
for short completions. With ``compiled=True`` the decode steps run as one compiled graph per layer call
(:class:`policy.compiled.CompiledDecoder`).
"""
from __future__ import annotations

import contextlib
import functools
from dataclasses import dataclass

import torch
from torch import nn

from ._batching import (
    cache_kwarg, left_pad, model_device, new_cache, positions_from_mask, scaled_logits, token_logprobs,
)
from .compiled import CompiledDecoder, compiled_decoding_supported, eager
from .kv_cache import reserve_decoding_room
from .lines import DistinctLines
from .shared_prompt import (
    heads_per_kv, shared_prompt_attention, shared_prompt_cache, shared_prompt_mask, supported,
)


@dataclass
class Rollout:
    """A batch of sampled completions, grouped by prompt.

    Row ``b`` of every ``[B, ...]`` tensor belongs to group ``b // group_size``; ``B = n_groups * G``.

    - ``prompt_ids``: one unpadded ``LongTensor [P_g]`` per group.
    - ``completion_ids``: ``LongTensor [B, T]``, right-padded with the pad id; ``T <= max_new_tokens``
      is the longest completion actually generated.
    - ``completion_mask``: ``FloatTensor [B, T]``, 1 for generated tokens up to and including the EOS,
      0 afterwards.
    - ``sample_logprobs``: ``FloatTensor [B, T]``, log-prob of each sampled token under the sampling
      distribution ``log_softmax(logits / temperature)`` taken *before* top-p truncation (so it is the
      same quantity :func:`policy.completion_logprobs` computes; top-p only restricts the support).
      Greedy decoding (temperature 0) records ``log_softmax(logits)``. 0 at padding.
    - ``truncated``: ``BoolTensor [B]``, True when no EOS was produced within ``max_new_tokens``.
    - ``texts``: decoded completions (special tokens skipped), length ``B``.
    """

    prompt_ids: list[torch.Tensor]
    completion_ids: torch.Tensor
    completion_mask: torch.Tensor
    sample_logprobs: torch.Tensor
    truncated: torch.Tensor
    group_size: int
    texts: list[str]

    @property
    def num_groups(self) -> int:
        return len(self.prompt_ids)

    @property
    def batch_size(self) -> int:
        return int(self.completion_ids.shape[0])

    def group_index(self, b: int) -> int:
        """Group (prompt) index of row ``b``."""
        if not 0 <= b < self.batch_size:
            raise IndexError(f"row {b} out of range for batch of {self.batch_size}")
        return b // self.group_size

    def completion_lengths(self) -> torch.Tensor:
        """``LongTensor [B]``: generated tokens per row, EOS included."""
        return self.completion_mask.sum(-1).long()


@dataclass
class _Chunk:
    """Raw decode output for a slice of groups (all ``[b, T_chunk]`` / ``[b]``)."""

    ids: torch.Tensor
    mask: torch.Tensor
    logprobs: torch.Tensor
    truncated: torch.Tensor


def resolve_eos_ids(model: nn.Module, tokenizer, eos_token_ids: list[int] | None = None) -> list[int]:
    """Stop tokens: the explicit list, else tokenizer EOS plus generation-config EOS ids (deduplicated)."""
    if eos_token_ids:
        return list(dict.fromkeys(int(i) for i in eos_token_ids))
    ids: list[int] = []
    if tokenizer.eos_token_id is not None:
        ids.append(int(tokenizer.eos_token_id))
    gen_eos = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    if gen_eos is not None:
        ids.extend(int(i) for i in (gen_eos if isinstance(gen_eos, (list, tuple)) else [gen_eos]))
    if not ids:
        raise ValueError("no EOS token id: pass eos_token_ids")
    return list(dict.fromkeys(ids))


def top_p_filter(probs: torch.Tensor, top_p: float) -> torch.Tensor:
    """Zero out the tail of ``probs [B, V]`` beyond cumulative mass ``top_p`` (the top token is always kept)."""
    if top_p >= 1.0:
        return probs
    sorted_probs, order = probs.sort(dim=-1, descending=True)
    mass_before = sorted_probs.cumsum(-1) - sorted_probs
    sorted_probs = sorted_probs.masked_fill(mass_before >= top_p, 0.0)
    return torch.zeros_like(probs).scatter(-1, order, sorted_probs)


Generators = torch.Generator | list[torch.Generator] | None
"""One generator for the whole batch, or one per group (each draws its group's rows), or the global RNG."""


def _draw(probs: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """One sample per row of ``probs [b, V]`` (unnormalised, >= 0) -> ``[b]``, by inverting the CDF.

    One uniform number per row, a cumulative sum and a binary search. ``torch.multinomial`` draws one
    exponential number per vocabulary entry instead (its one-sample path), 3-6% of a GRPO step: a
    49k-token vocabulary, 32 rows, at every decoded token. The sum runs in float64: a parallel (CUDA) float32
    cumsum need not be monotone, and a dip would let a zero-mass token be drawn.
    """
    device = generator.device if generator is not None else probs.device
    uniform = torch.rand(probs.shape[0], 1, generator=generator, device=device).to(probs.device)
    cdf = probs.double().cumsum(-1)  # [b, V]
    total = cdf[:, -1:]  # not finite if any entry is not, <= 0 if the row has no mass
    tokens = torch.searchsorted(cdf, uniform.double() * total, right=True).clamp(max=probs.shape[-1] - 1)
    mass = probs.gather(-1, tokens).squeeze(-1)
    tokens = tokens.squeeze(-1)
    valid = torch.isfinite(total.squeeze(-1)) & (total.squeeze(-1) > 0)
    if bool((~(mass > 0) | ~valid).any()):  # one check a draw: u * total rounded up, or no distribution at all
        if not bool(valid.all()):
            raise ValueError("cannot sample: a row of probabilities is not finite or has no mass")
        # The last token with mass at or before the drawn index.
        index = torch.arange(probs.shape[-1], device=probs.device).expand_as(probs)
        last = torch.where((probs > 0) & (index <= tokens.unsqueeze(-1)), index, -1).amax(-1)
        tokens = torch.where(mass > 0, tokens, last)
    return tokens


def sample_next(
    logits: torch.Tensor, temperature: float, top_p: float, generator: Generators
) -> tuple[torch.Tensor, torch.Tensor]:
    """Pick the next token per row from ``logits [B, V]``; returns ``tokens [B]`` and their log-probs ``[B]``.

    Consumes exactly one ``torch.rand`` draw per row, from its group's generator (none when greedy). With
    one generator per group, a group's tokens depend only on its own generator, not on the other rows of the
    batch: the same on one process or several, whatever the batch layout.
    """
    if temperature == 0:
        tokens = logits.argmax(-1)
        return tokens, token_logprobs(logits, tokens, temperature)
    # One log-softmax serves both the draw and the sampled token's log-prob.
    logprobs = torch.log_softmax(scaled_logits(logits, temperature), dim=-1)
    probs = top_p_filter(logprobs.exp(), top_p)
    if isinstance(generator, list):
        rows = probs.shape[0] // len(generator)
        tokens = torch.cat([_draw(p, g) for p, g in zip(probs.split(rows), generator)])
    else:
        tokens = _draw(probs, generator)
    return tokens, logprobs.gather(-1, tokens.unsqueeze(-1)).squeeze(-1)


def _encode_prompts(tokenizer, prompts: list[str]) -> list[torch.Tensor]:
    """Token ids ``[P_g]`` per prompt; prompts are already chat-templated, so no special tokens are added."""
    encoded = [torch.tensor(tokenizer(p, add_special_tokens=False)["input_ids"], dtype=torch.long) for p in prompts]
    if any(e.numel() == 0 for e in encoded):
        raise ValueError("a prompt tokenizes to zero tokens")
    return encoded


def _decode_chunk(
    model: nn.Module,
    prompt_ids: list[torch.Tensor],
    group_size: int,
    max_new_tokens: int,
    temperature: float,
    top_p: float,
    generator: Generators,
    eos_ids: torch.Tensor,
    pad_id: int,
    lines: DistinctLines | None = None,
    compiled: bool = False,
) -> _Chunk:
    """Sample ``group_size`` completions for each prompt of a chunk, sharing each prompt's KV cache.

    ``lines``: the chunk's :class:`DistinctLines` (one row per completion, in row order), or None. ``compiled``:
    decode through :class:`policy.compiled.CompiledDecoder` where the prompt is shared and the model supports it.
    """
    device = model_device(model)
    cache, kw = new_cache(model), cache_kwarg(model)
    ids, attn = left_pad(prompt_ids, pad_id, device)  # [n, P]
    out = model(input_ids=ids, attention_mask=attn, position_ids=positions_from_mask(attn),
                use_cache=True, logits_to_keep=1, **{kw: cache})
    # Prompt is encoded once per group; only now does the batch grow to n * G rows. Shared: each group's rows
    # attend to one copy of its prompt's keys; otherwise the cache is repeated to the rows.
    shared = supported(model, cache, group_size, max_new_tokens)
    prompt_mask, attention, decoder = attn, contextlib.nullcontext, None  # called once per decoded token
    if shared and compiled and compiled_decoding_supported(model):
        decoder = CompiledDecoder(model, cache, group_size, max_new_tokens)
    if shared:
        cache = shared_prompt_cache(cache, group_size, max_new_tokens) if decoder is None else None
        per_kv, attention = heads_per_kv(model), functools.partial(shared_prompt_attention, model)
    else:
        cache.batch_repeat_interleave(group_size)
        reserve_decoding_room(cache, max_new_tokens)
    logits = out.logits[:, -1].repeat_interleave(group_size, 0)  # [B, V]
    attn = attn.repeat_interleave(group_size, 0)  # [B, P]
    next_pos = attn.sum(-1, keepdim=True)  # [B, 1]: first completion position = prompt length
    batch = logits.shape[0]
    finished = torch.zeros(batch, dtype=torch.bool, device=device)
    tokens_out, mask_out, logp_out = [], [], []
    for step in range(max_new_tokens):
        if lines is not None:
            logits = lines.mask(logits)
        tokens, logp = sample_next(logits, temperature, top_p, generator)
        alive = ~finished
        if lines is not None:
            lines.update(tokens, alive)
        tokens_out.append(torch.where(alive, tokens, pad_id))
        logp_out.append(torch.where(alive, logp, 0.0))
        mask_out.append(alive.float())
        finished = finished | (alive & torch.isin(tokens, eos_ids))
        if bool(finished.all()) or step == max_new_tokens - 1:
            break
        # Finished rows keep decoding their pad token (cheaper than re-shaping the cache); it is masked out.
        if shared:
            mask = shared_prompt_mask(prompt_mask, group_size, per_kv, max_new_tokens, step, 1)
        else:
            mask = attn = torch.cat([attn, attn.new_ones(batch, 1)], dim=-1)
        with attention():
            if decoder is not None:
                logits = decoder.step(tokens_out[-1].unsqueeze(-1), next_pos + step, mask, step)
            else:
                logits = model(input_ids=tokens_out[-1].unsqueeze(-1), attention_mask=mask,
                               position_ids=next_pos + step, use_cache=True, **{kw: cache}).logits[:, -1]
    return _Chunk(torch.stack(tokens_out, 1), torch.stack(mask_out, 1), torch.stack(logp_out, 1), ~finished)


def _pad_right(t: torch.Tensor, width: int, value: float) -> torch.Tensor:
    """Right-pad ``[b, T]`` to ``[b, width]``."""
    return torch.nn.functional.pad(t, (0, width - t.shape[1]), value=value)


def _merge_chunks(chunks: list[_Chunk], pad_id: int) -> _Chunk:
    """Concatenate chunks along the batch axis, right-padding to the longest completion."""
    width = max(c.ids.shape[1] for c in chunks)
    return _Chunk(
        torch.cat([_pad_right(c.ids, width, pad_id) for c in chunks]),
        torch.cat([_pad_right(c.mask, width, 0.0) for c in chunks]),
        torch.cat([_pad_right(c.logprobs, width, 0.0) for c in chunks]),
        torch.cat([c.truncated for c in chunks]),
    )


def sample_groups(
    model: nn.Module,
    tokenizer,
    prompts: list[str],
    group_size: int,
    max_new_tokens: int = 32,
    temperature: float = 1.0,
    top_p: float = 1.0,
    generator: Generators = None,
    eos_token_ids: list[int] | None = None,
    groups_per_batch: int | None = 8,
    distinct_from: list[str] | None = None,
    compiled: bool = False,
) -> Rollout:
    """Sample ``group_size`` completions for each prompt (already chat-templated text).

    Runs under ``torch.inference_mode()``. Each prompt's forward pass runs once; its KV cache is
    repeated to G rows for decoding. ``groups_per_batch`` prompts are decoded together
    (left-padded; ``None`` = all at once). ``temperature == 0`` decodes greedily. ``generator``: one for the
    batch, or a list with one per prompt (then a group's samples do not depend on the batch around it); best on
    the model's device (another device works, at one copy per token). Rows stop at their first EOS
    (``eos_token_ids``, default: the tokenizer's and generation config's) and emit the pad token afterwards.

    ``distinct_from`` (one text per prompt, e.g. its query) turns on :class:`policy.lines.DistinctLines`: no line
    ends equal to that text or to an earlier line of its completion. For inference only: the recorded log-probs
    are then those of the constrained distribution, not the policy's.

    ``compiled``: run each decoded token's decoder layers as one compiled graph (:class:`policy.compiled.
    CompiledDecoder`; needs a C++ compiler on CPU) where the prompt is shared and the model is supported;
    otherwise, and for the prompt pass, eager.
    """
    if not prompts:
        raise ValueError("prompts is empty")
    if group_size < 1 or max_new_tokens < 1:
        raise ValueError("group_size and max_new_tokens must be >= 1")
    if temperature < 0 or not 0 < top_p <= 1:
        raise ValueError("need temperature >= 0 and 0 < top_p <= 1")
    if isinstance(generator, list) and len(generator) != len(prompts):
        raise ValueError(f"{len(generator)} generators for {len(prompts)} prompts: give one per prompt")
    if distinct_from is not None and len(distinct_from) != len(prompts):
        raise ValueError(f"{len(distinct_from)} distinct_from texts for {len(prompts)} prompts: give one per prompt")
    eos = resolve_eos_ids(model, tokenizer, eos_token_ids)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos[0]
    eos_ids = torch.tensor(eos, dtype=torch.long, device=model_device(model))
    prompt_ids = _encode_prompts(tokenizer, prompts)
    step = groups_per_batch or len(prompt_ids)
    with torch.inference_mode(), eager():  # layers compiled for scoring run eagerly; CompiledDecoder has its own graph
        chunks = [
            _decode_chunk(model, prompt_ids[i:i + step], group_size, max_new_tokens, temperature, top_p,
                          generator[i:i + step] if isinstance(generator, list) else generator, eos_ids, pad_id,
                          None if distinct_from is None else DistinctLines(
                              tokenizer, [[t] for t in distinct_from[i:i + step] for _ in range(group_size)], eos_ids),
                          compiled)
            for i in range(0, len(prompt_ids), step)
        ]
    merged = _merge_chunks(chunks, pad_id)
    texts = [
        tokenizer.decode(row[mask.bool()].tolist(), skip_special_tokens=True)
        for row, mask in zip(merged.ids.cpu(), merged.mask.cpu())
    ]
    return Rollout(prompt_ids, merged.ids, merged.mask, merged.logprobs, merged.truncated, group_size, texts)
