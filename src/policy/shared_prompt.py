"""Attention for G completions of one prompt: each group attends to its prompt's keys once, not G times.

GRPO decodes and scores G completions per prompt. The plain layout repeats the prompt's keys and values to the G
rows of its group (``batch_repeat_interleave``) and attends to each copy: G times the memory traffic, and in
backward G copies to sum. Here a group is one attention batch entry:

- keys/values ``[n, kv_heads, P + G * S, d]``: the prompt's once, then S slots for each of the G completions;
- queries ``[n, kv_heads, G * heads_per_kv * q, d]``: the group's rows and query heads stacked;
- a boolean mask lets each completion token see its prompt's real tokens and its own completion up to itself.

Masked keys get exactly zero weight, so this is the same attention as the repeated layout (equal to rounding).
:func:`shared_prompt_attention` switches a model to it for one forward pass; it needs transformers' ``sdpa``
attention and plain (full-attention) cache layers, and :func:`supported` says when that holds. Decoding uses it.

Scoring needs no cache: :func:`group_sequences` lays each group out as one sequence, its prompt once and then
its G completions, with a mask that lets a completion token see its prompt and its own past. One plain forward
pass then scores the whole group, the same attention again, and with no cache object in the way the decoder
layers can be compiled (:mod:`policy.compiled`).
"""
from __future__ import annotations

import contextlib

import torch
import torch.nn.functional as F
from transformers import AttentionInterface
from transformers.cache_utils import Cache, DynamicLayer
from transformers.integrations.sdpa_attention import sdpa_attention_forward
from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, sdpa_mask

from ._batching import left_pad, positions_from_mask

NAME = "sdpa_shared_prompt"


def _attention(module, query, key, value, attention_mask, dropout=0.0, scaling=None, **kwargs):
    """``query [B, H, q, d]``; ``key``/``value`` ``[n, kv, L, d]`` with ``B = n * G`` -> ``([B, q, H, d], None)``.

    A batch whose keys have as many rows as its queries (the prompt pass) is plain SDPA."""
    n, kv = key.shape[:2]
    rows, heads, q, d = query.shape
    if n == rows:
        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout, scaling=scaling,
                                      **kwargs)
    group, per_kv = rows // n, heads // kv
    # Row b = g * G + r, head h = k * per_kv + j (transformers' repeat_kv order) -> query row (r, j, i) of (g, k).
    packed = query.view(n, group, kv, per_kv, q, d).transpose(1, 2).reshape(n, kv, group * per_kv * q, d)
    out = F.scaled_dot_product_attention(packed, key, value, attn_mask=attention_mask, dropout_p=dropout,
                                         scale=scaling)
    return out.view(n, kv, group, per_kv, q, d).permute(0, 2, 4, 1, 3, 5).reshape(rows, q, heads, d), None


AttentionInterface.register(NAME, _attention)
ALL_MASK_ATTENTION_FUNCTIONS.register(NAME, sdpa_mask)  # masks for the prompt pass, built as for sdpa


class SharedPromptLayer(DynamicLayer):
    """One layer's keys (values alike) ``[n, kv, P + G * S, d]``: the prompt's, then S slots per completion row.

    ``update`` takes the rows' new keys ``[n * G, kv, q, d]`` for slots ``start .. start + q`` and returns the
    whole buffer; unfilled slots are never attended (the mask hides them)."""

    def __init__(self, keys: torch.Tensor, values: torch.Tensor, group_size: int, slots: int):
        super().__init__()
        self.device, self.is_initialized = keys.device, True
        self.prompt_keys, self.prompt_values = keys, values
        self.group_size, self.slots, self.start = group_size, slots, 0
        self.keys = self.values = None

    def _pack(self, prompt: torch.Tensor, new: torch.Tensor, buffer: torch.Tensor | None) -> torch.Tensor:
        n, kv, prompt_len, d = prompt.shape
        q = new.shape[-2]
        rows = new.reshape(n, self.group_size, kv, q, d).transpose(1, 2)  # [n, kv, G, q, d]
        if self.start == 0 and q == self.slots:  # every slot at once: differentiable
            return torch.cat([prompt, rows.reshape(n, kv, self.group_size * q, d)], dim=2)
        if buffer is None:
            # Zeros, not empty: a masked key has zero weight, but zero times a NaN left in memory is NaN.
            buffer = prompt.new_zeros(n, kv, prompt_len + self.group_size * self.slots, d)
            buffer[:, :, :prompt_len] = prompt
        buffer[:, :, prompt_len:].view(n, kv, self.group_size, self.slots, d)[:, :, :, self.start:self.start + q] = rows
        return buffer

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args, **kwargs):
        q = key_states.shape[-2]
        if self.start + q > self.slots:
            raise ValueError(f"{self.start + q} completion tokens for {self.slots} slots")
        self.keys = self._pack(self.prompt_keys, key_states, self.keys)
        self.values = self._pack(self.prompt_values, value_states, self.values)
        self.start += q
        return self.keys, self.values

    def get_seq_length(self) -> int:
        return self.prompt_keys.shape[-2] + self.start

    def get_mask_sizes(self, query_length: int) -> tuple[int, int]:
        return self.prompt_keys.shape[-2] + self.group_size * self.slots, 0


MAX_KEYS_RATIO = 4
"""Each packed query scores ``P + G * S`` keys where the repeated layout scores ``P + S``: beyond this ratio (long
completions, large G, short prompts) the repeated layout is used. At the bench's shapes the ratio is 1.8."""


def supported(model, cache, group_size: int, slots: int) -> bool:
    """True when there is a prompt to share (``group_size > 1``) and sharing does not score many more keys than
    repeating (:data:`MAX_KEYS_RATIO`), the model runs transformers' sdpa attention, and ``cache`` (after the prompt
    pass) holds only plain full-attention layers: the layout this module replaces."""
    prompt_len = cache.get_seq_length() if cache.layers else 0
    return (group_size > 1 and prompt_len + group_size * slots <= MAX_KEYS_RATIO * (prompt_len + slots)
            and getattr(model.config, "_attn_implementation", None) == "sdpa"
            and all(type(layer) is DynamicLayer and layer.is_initialized for layer in cache.layers))


def group_sequences_supported(model, group_size: int, prompt_len: int, slots: int) -> bool:
    """True when :func:`group_sequences` can score ``group_size`` completions of ``slots`` tokens after a
    ``prompt_len``-token prompt: a prompt to share, the key ratio of :func:`supported`, transformers' sdpa attention
    (which takes the boolean 4-D mask as it is) and full attention in every layer (a sliding window would need
    its own mask)."""
    config = model.config.get_text_config(decoder=True)
    full_attention = (all(t == "full_attention" for t in getattr(config, "layer_types", None) or ["full_attention"])
                      and getattr(config, "sliding_window", None) is None)
    return (group_size > 1 and prompt_len + group_size * slots <= MAX_KEYS_RATIO * (prompt_len + slots)
            and getattr(model.config, "_attn_implementation", None) == "sdpa" and full_attention)


def group_sequences(prompt_ids: list[torch.Tensor], completion_ids: torch.Tensor, group_size: int,
                    pad_id: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Each group as one sequence of ``L = P + G * T`` tokens: its left-padded prompt, then its G completions.

    ``prompt_ids``: ``n`` prompts ``[P_g]``; ``completion_ids`` ``[n * G, T]`` (row ``g * G + r``). Returns
    ``ids [n, L]``, ``positions [n, L]`` (a completion's tokens continue its prompt's positions, each from
    ``P_g``) and ``mask [n, 1, L, L]`` bool: a prompt token sees the real prompt tokens up to itself, a completion
    token sees the real prompt tokens and its own completion up to itself. A pad sees only itself, so no row
    of the mask is empty (an empty row is NaN in SDPA); nothing real sees a pad.
    """
    n, T = len(prompt_ids), completion_ids.shape[1]
    device = completion_ids.device
    prompt, prompt_mask = left_pad(prompt_ids, pad_id, device)  # [n, P]
    P = prompt.shape[1]
    ids = torch.cat([prompt, completion_ids.reshape(n, group_size * T)], dim=1)  # [n, L]
    time = torch.arange(T, device=device).repeat(group_size)  # [G * T]
    prompt_len = prompt_mask.sum(-1, keepdim=True)
    positions = torch.cat([positions_from_mask(prompt_mask), prompt_len + time], dim=1)  # [n, L]
    index = torch.arange(P + group_size * T, device=device)
    in_prompt = index < P
    row = torch.where(in_prompt, -1, (index - P).div(T, rounding_mode="floor"))  # completion row, -1 in the prompt
    order = torch.where(in_prompt, index, torch.cat([index[:P], time]))  # time within the prompt or the completion
    same_row = (row[:, None] == row[None, :]) & (order[None, :] <= order[:, None])  # causal within prompt / row
    sees = (same_row | (~in_prompt[:, None] & in_prompt[None, :]))[None]  # [1, L, L]
    real = torch.cat([prompt_mask.bool(), prompt_mask.new_ones(n, group_size * T, dtype=torch.bool)], dim=1)
    mask = (sees & real[:, None, :]) | torch.eye(index.numel(), dtype=torch.bool, device=device)
    return ids, positions, mask[:, None]


def shared_prompt_cache(cache, group_size: int, slots: int) -> Cache:
    """A cache for the completion pass from a filled prompt ``DynamicCache`` of ``n`` rows (not repeated)."""
    return Cache(layers=[SharedPromptLayer(layer.keys, layer.values, group_size, slots) for layer in cache.layers])


def shared_prompt_mask(prompt_mask: torch.Tensor, group_size: int, heads_per_kv: int, slots: int, start: int,
                       q: int) -> torch.Tensor:
    """``[n, 1, G * heads_per_kv * q, P + G * slots]`` bool: query (r, j, i) of group g sees g's real prompt
    tokens (``prompt_mask [n, P]``, 1 = real) and row r's slots ``0 .. start + i``."""
    n, prompt_len = prompt_mask.shape
    device = prompt_mask.device
    query_row = torch.arange(group_size, device=device).repeat_interleave(heads_per_kv * q)  # [Q]
    query_time = start + torch.arange(q, device=device).repeat(group_size * heads_per_kv)  # [Q]
    slot_row = torch.arange(group_size, device=device).repeat_interleave(slots)  # [G * S]
    slot_time = torch.arange(slots, device=device).repeat(group_size)  # [G * S]
    own = (query_row[:, None] == slot_row[None]) & (slot_time[None] <= query_time[:, None])  # [Q, G * S]
    prompt = prompt_mask.bool()[:, None, None, :].expand(n, 1, own.shape[0], prompt_len)
    return torch.cat([prompt, own.expand(n, 1, *own.shape)], dim=-1)


def heads_per_kv(model) -> int:
    config = model.config.get_text_config(decoder=True)
    return config.num_attention_heads // (getattr(config, "num_key_value_heads", None) or config.num_attention_heads)


@contextlib.contextmanager
def shared_prompt_attention(model):
    """Run ``model``'s attention as :func:`_attention` inside the block (its config is shared by every layer)."""
    config = model.config
    before = config._attn_implementation
    config._attn_implementation = NAME
    try:
        yield
    finally:
        config._attn_implementation = before
