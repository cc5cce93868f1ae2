"""Compute precision: fp32 everywhere, or bf16 matrix products under autocast with fp32 master weights.

Under ``bf16`` the model's weights, gradients and optimiser state stay fp32; autocast runs the matrix products
(the transformer and the LM head) in bf16, which this project's CPUs (``avx512_bf16``) and every recent GPU do
about twice as fast. Log-softmax, the loss and the optimiser step stay fp32: :func:`policy._batching.token_logprobs`
upcasts the logits before normalising them.
"""
from __future__ import annotations

import contextlib
import copy

import torch

PRECISIONS = ("fp32", "bf16")


def autocast(precision: str, device: torch.device | str):
    """A context manager that runs its forward passes in ``precision`` on ``device`` (``fp32``: a no-op)."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    if precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(torch.device(device).type, dtype=torch.bfloat16)


class SamplingCopy:
    """The model that generates rollouts: the policy itself under ``fp32``, a bf16 copy of it under ``bf16``.

    Autocast does not speed up token-by-token decoding on CPU: each one-token step re-casts every fp32 weight to
    bf16, which costs as much as the product itself. A bf16 copy decodes about 1.7x faster (3.4 s against 5.7 s
    for 32 completions of 32 tokens on 2 cores). :meth:`model` refreshes it from the fp32 master weights first,
    so it always samples the current policy; it runs its norms in bf16 too, so its sampling distribution differs
    from the scored one by rounding, as a vLLM sampler's does from TRL's trainer (the loss never uses the
    sampler's log-probs).
    """

    def __init__(self, model: torch.nn.Module, precision: str):
        autocast(precision, "cpu")  # validates precision
        self.source = model
        self.copy = None
        if precision == "bf16":
            self.copy = copy.deepcopy(model).to(torch.bfloat16).eval().requires_grad_(False)
            # Only the weights go to bf16: buffers such as the rotary inverse frequencies stay as they were
            # (bf16 frequencies would shift every position's phase by up to 0.4%).
            for mine, theirs in zip(self.copy.buffers(), model.buffers()):
                mine.data = theirs.data.clone()

    @torch.no_grad()
    def model(self) -> torch.nn.Module:
        if self.copy is None:
            return self.source
        for dst, src in zip(self.copy.parameters(), self.source.parameters()):
            dst.copy_(src)
        return self.copy
