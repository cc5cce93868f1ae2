"""Regional ``torch.compile`` of a policy's decoder layers: the scoring passes, and decoding.

Scoring (the update's forward and backward, the reference pass) runs each group as one sequence with no KV cache
(:func:`policy.shared_prompt.group_sequences`), so every decoder layer runs the same code on the same shapes.
Compiling the layers one by one ("regional compilation") then gives one graph that all of them share, with
dynamic shapes, so prompts of a new length do not recompile: two graphs in all (with grad, and without), ~20 s
on 2 CPU cores. Inductor fuses the element-wise work between the matrix products (norms, rotary, SiLU, casts,
residual adds), which is most of a bf16 layer's time on CPU.

Decoding cannot go through transformers' forward for this: its cache objects key per-layer state on each layer's
index, so a compiled layer would recompile once per layer and per cache state (minutes, then eager anyway), and
:func:`eager` keeps the layers compiled for scoring out of it. :class:`CompiledDecoder` runs the decode step's
model-level loop itself instead, and hands each layer a cache that writes into preallocated buffers at a tensor
index: one more graph, shared by every layer and every decoded token.
"""
from __future__ import annotations

import shutil

import torch
from torch import nn

from ._batching import cache_kwarg

CXX = ("g++", "c++", "clang++")
"""Compilers inductor can build CPU kernels with (any one on PATH)."""


def decoder_layers(model: nn.Module) -> list[nn.Module]:
    """The repeated blocks of a transformers model: the modules of the classes it declares unsplittable."""
    names = set(getattr(model, "_no_split_modules", None) or [])
    return [m for m in model.modules() if type(m).__name__ in names]


def compile_decoder_layers(model: nn.Module) -> int:
    """Compile each decoder layer of ``model`` in place (``nn.Module.compile``, dynamic shapes); returns how many.

    Weights, names and checkpoints are unchanged. Raises ``ValueError`` for a model whose layers cannot be found,
    and ``RuntimeError`` on CPU without a C++ compiler (checked here, not at the first step's forward).
    """
    layers = decoder_layers(model)
    if not layers:
        raise ValueError(f"torch_compile: found no decoder layers in {type(model).__name__} "
                         "(it declares no _no_split_modules)")
    require_compiler(model)
    for layer in layers:
        layer.compile(dynamic=True)
    return len(layers)


def require_compiler(model: nn.Module) -> None:
    """Raise ``RuntimeError`` for a model on CPU when no C++ compiler is on PATH (inductor builds its kernels)."""
    if next(model.parameters()).device.type == "cpu" and not any(shutil.which(c) for c in CXX):
        raise RuntimeError(f"torch_compile needs a C++ compiler on CPU ({', '.join(CXX)}); install one "
                           "or set train.torch_compile = false")


def eager():
    """A context in which compiled modules run eagerly (decoding; see the module docstring)."""
    return torch.compiler.set_stance("force_eager")


DECODERS = ("LlamaModel", "MistralModel", "Qwen2Model", "Qwen3Model")
"""Decoder classes whose forward is embed -> rotary -> layers -> norm, which :class:`CompiledDecoder` repeats."""


class _SlotWriter:
    """The cache one layer sees in a compiled decode step: buffers ``[n, kv, P + G * S, d]`` (the prompt's keys,
    then S slots per completion row) and ``index [G]``, the buffer positions of this step's G slots."""

    def __init__(self, keys: torch.Tensor, values: torch.Tensor, index: torch.Tensor):
        self.keys, self.values, self.index = keys, values, index

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args, **kwargs):
        n, kv, _, d = self.keys.shape
        for buffer, new in ((self.keys, key_states), (self.values, value_states)):  # new: [n * G, kv, 1, d]
            buffer[:, :, self.index] = new.reshape(n, -1, kv, d).transpose(1, 2).to(buffer.dtype)
        return self.keys, self.values


def _layer_step(layer: nn.Module, hidden: torch.Tensor, mask: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor,
                writer: _SlotWriter, cache_name: str) -> torch.Tensor:
    # forward, not __call__: a layer compiled for scoring must not run its own graph here.
    return layer.forward(hidden, attention_mask=mask, position_embeddings=(cos, sin), **{cache_name: writer})


_compiled_layer_step = torch.compile(_layer_step, dynamic=True)


def compiled_decoding_supported(model: nn.Module) -> bool:
    """True when :class:`CompiledDecoder` can run ``model``: a decoder of :data:`DECODERS` and an LM head."""
    decoder = model.get_decoder() if hasattr(model, "get_decoder") else None
    return type(decoder).__name__ in DECODERS and isinstance(getattr(model, "lm_head", None), nn.Linear)


class CompiledDecoder:
    """Decode steps for G completions per prompt over a filled prompt cache, each layer one compiled graph.

    The layout is :mod:`policy.shared_prompt`'s (a group's rows attend to one copy of its prompt), run under
    :func:`policy.shared_prompt.shared_prompt_attention` with its mask. ``prompt_cache``: the prompt pass's
    ``DynamicCache`` (``n`` rows); ``slots``: tokens to decode. The buffers hold values in their own dtype and keys
    cast to it: under bf16 autocast, the dtype attention computes in anyway (the same logits as eager).
    """

    def __init__(self, model: nn.Module, prompt_cache, group_size: int, slots: int):
        require_compiler(model)
        self.model, self.decoder = model, model.get_decoder()
        self.group_size, self.slots = group_size, slots
        self.prompt_len = prompt_cache.layers[0].keys.shape[-2]
        self.buffers = []
        for layer in prompt_cache.layers:
            n, kv, _, d = layer.keys.shape
            pair = []
            for prompt in (layer.keys, layer.values):
                # Zeros, not empty: a masked key has zero weight, but zero times a NaN left in memory is NaN.
                buffer = prompt.new_zeros(n, kv, self.prompt_len + group_size * slots, d, dtype=layer.values.dtype)
                buffer[:, :, :self.prompt_len] = prompt
                pair.append(buffer)
            self.buffers.append(pair)
        self.cache_name = cache_kwarg(self.decoder.layers[0])

    def step(self, tokens: torch.Tensor, positions: torch.Tensor, mask: torch.Tensor, step: int) -> torch.Tensor:
        """Logits ``[B, V]`` after ``tokens [B, 1]`` at ``positions [B, 1]``, the ``step``-th decoded token."""
        index = self.prompt_len + torch.arange(self.group_size, device=tokens.device) * self.slots + step
        hidden = self.decoder.embed_tokens(tokens)
        cos, sin = self.decoder.rotary_emb(hidden, position_ids=positions)
        with torch.compiler.set_stance("default"):
            for layer, (keys, values) in zip(self.decoder.layers, self.buffers):
                hidden = _compiled_layer_step(layer, hidden, mask, cos, sin, _SlotWriter(keys, values, index),
                                              self.cache_name)
        return self.model.lm_head(self.decoder.norm(hidden))[:, -1]
