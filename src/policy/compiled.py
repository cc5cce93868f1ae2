"""Regional ``torch.compile`` of a policy's decoder layers, for the scoring passes.

Scoring (the update's forward and backward, the reference pass) runs each group as one sequence with no KV cache
(:func:`policy.shared_prompt.group_sequences`), so every decoder layer runs the same code on the same shapes.
Compiling the layers one by one ("regional compilation") then gives one graph that all of them share, with
dynamic shapes, so prompts of a new length do not recompile: two graphs in all (with grad, and without), ~20 s
on 2 CPU cores. Inductor fuses the element-wise work between the matrix products (norms, rotary, SiLU, casts,
residual adds), which is most of a bf16 layer's time on CPU.

Decoding stays eager (:func:`eager`): transformers' cache objects key per-layer state on each layer's index, so
a compiled layer would recompile once per layer and per cache state (minutes, then eager anyway).
"""
from __future__ import annotations

import shutil

import torch
from torch import nn

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
    on_cpu = next(model.parameters()).device.type == "cpu"
    if on_cpu and not any(shutil.which(c) for c in CXX):
        raise RuntimeError(f"torch_compile needs a C++ compiler on CPU ({', '.join(CXX)}); install one "
                           "or set train.torch_compile = false")
    for layer in layers:
        layer.compile(dynamic=True)
    return len(layers)


def eager():
    """A context in which compiled modules run eagerly (decoding; see the module docstring)."""
    return torch.compiler.set_stance("force_eager")
