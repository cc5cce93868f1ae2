"""Compute precision: fp32 everywhere, or bf16 matrix products under autocast with fp32 master weights.

Under ``bf16`` the model's weights, gradients and optimiser state stay fp32; autocast runs the matrix products
(the transformer and the LM head) in bf16, which this project's CPUs (``avx512_bf16``) and every recent GPU do
about twice as fast. Log-softmax, the loss and the optimiser step stay fp32: :func:`policy._batching.token_logprobs`
upcasts the logits before normalising them. ``auto`` (:func:`resolve_precision`) takes bf16 where it is native on
the run's device and fp32 elsewhere: a run states what it asks for, the trainer records what it ran.
"""
from __future__ import annotations

import contextlib
import copy
import functools
import sys
import warnings

import torch

PRECISIONS = ("fp32", "bf16")
"""What a run computes in."""
PRECISION_SETTINGS = ("auto", *PRECISIONS)
"""What a config may ask for: ``auto`` becomes one of :data:`PRECISIONS` once the device is known."""


def check_precision(precision: str, allowed: tuple[str, ...] = PRECISIONS) -> None:
    """Raise a one-line error unless ``precision`` is one of ``allowed``."""
    if precision not in allowed:
        raise ValueError(f"precision must be one of {allowed}, got {precision!r}")


def native_bf16(device: torch.device | str) -> tuple[bool, str]:
    """Whether bf16 matrix products are native on ``device`` (CUDA: the GPU supports bf16; CPU:
    :func:`cpu_has_bf16_kernels`), and the reason in a few words."""
    device = torch.device(device)
    if device.type == "cuda":
        native = torch.cuda.is_bf16_supported()
        return native, f"CUDA {'supports' if native else 'does not support'} bf16 on this GPU"
    if device.type == "cpu":
        native = cpu_has_bf16_kernels()
        return native, (f"oneDNN {'has' if native else 'has no'} bf16 kernels for this CPU "
                        f"({torch.backends.cpu.get_cpu_capability()}){'' if native else ': bf16 would be emulated'}")
    return False, f"no bf16 check for {device.type}"


def resolve_precision(precision: str, device: torch.device | str, name: str = "precision", log: bool = True) -> str:
    """The precision a run on ``device`` computes in: ``fp32`` or ``bf16`` as set (an explicit bf16 on a CPU that
    emulates it is allowed, and :func:`autocast` warns); ``auto``: bf16 where :func:`native_bf16` says it is
    native, else fp32, said in one line on stderr unless ``log`` is false (``name``: the setting, e.g.
    ``train.precision``)."""
    check_precision(precision, PRECISION_SETTINGS)
    if precision != "auto":
        return precision
    native, reason = native_bf16(device)
    chosen = "bf16" if native else "fp32"
    if log:
        print(f'{name} = "auto": {chosen} ({reason})', file=sys.stderr)
    return chosen


def record_precision(run_config: dict, section: str, precision: str) -> dict:
    """``run_config`` (a new dict) with ``[section]``'s precision the resolved ``precision``: the run's record says
    what it computed in, not ``auto``. Without that section, ``run_config`` as it is."""
    if section not in run_config:
        return run_config
    return {**run_config, section: {**run_config[section], "precision": precision}}


def autocast(precision: str, device: torch.device | str):
    """A context manager that runs its forward passes in ``precision`` on ``device`` (``fp32``: a no-op)."""
    check_precision(precision)
    if precision == "fp32":
        return contextlib.nullcontext()
    device_type = torch.device(device).type
    if device_type == "cpu" and not cpu_has_bf16_kernels():
        _warn_emulated_bf16()
    return torch.autocast(device_type, dtype=torch.bfloat16)


@functools.cache
def cpu_has_bf16_kernels() -> bool:
    """Whether oneDNN has bf16 kernels for this CPU (AVX-512 on x86): without them bf16 is emulated. The one check
    behind both the emulation warning and ``auto``; a build without oneDNN has none."""
    if not torch.backends.mkldnn.is_available():
        return False
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):  # a build that cannot tell: assume none, as auto then stays fp32
        return False


@functools.cache
def _warn_emulated_bf16() -> None:
    """Once a process: the run asked for bf16 on a CPU that emulates it."""
    warnings.warn(f'precision "bf16" on a CPU without AVX-512 (torch reports '
                  f'{torch.backends.cpu.get_cpu_capability()}): bf16 matrix products are emulated there, many times '
                  f'slower than fp32 (a warm-start batch: 359 s against 14 s); set precision = "fp32" or "auto"',
                  stacklevel=3)


def frozen_copy(model: torch.nn.Module, precision: str) -> torch.nn.Module:
    """A frozen copy of ``model`` for forward passes under :func:`autocast` (the reference model, the sampler).

    Under ``bf16`` its ``nn.Linear`` weights are stored in bf16: autocast would cast them to exactly that at every
    forward, and on CPU that cast costs as much as a one-token product. Everything else stays as it is.
    """
    check_precision(precision)
    frozen = copy.deepcopy(model).eval().requires_grad_(False)
    if precision == "bf16":
        for module in frozen.modules():
            if isinstance(module, torch.nn.Linear):
                # A new tensor, so a tied LM head no longer shares it with the fp32 input embedding.
                module.weight = torch.nn.Parameter(module.weight.detach().to(torch.bfloat16), requires_grad=False)
    return frozen


class SamplingCopy:
    """The model that generates rollouts: the policy itself under ``fp32``; under ``bf16``, a copy of it whose
    matrix-product weights are stored in bf16, to run under :func:`autocast` like the scorer.

    Autocast does not speed up token-by-token decoding on CPU: each one-token step re-casts every fp32 weight to
    bf16, which costs as much as the product itself. Storing the ``nn.Linear`` weights (the LM head included)
    in bf16 removes that cast (LoRA's small factors are still cast), and nothing else changes: embeddings,
    norms, buffers (the rotary frequencies) and so the residual stream stay fp32, exactly as in the autocast
    forward that scores the completions, so the sampler draws from the distribution the loss scores (the same
    log-probs, experiments/runs/2026-11-28_bf16_sampler). A copy cast wholly to bf16, residual stream included,
    sampled a visibly noisier policy (higher KL and entropy over 24 steps, experiments/runs/2026-11-28_bf16_check).
    :meth:`model` refreshes the copy from the fp32 master weights, so it always samples the current policy; run it
    inside ``autocast(precision, device)``.
    """

    def __init__(self, model: torch.nn.Module, precision: str):
        check_precision(precision)
        self.source = model
        self.copy = frozen_copy(model, precision) if precision == "bf16" else None

    @torch.no_grad()
    def model(self) -> torch.nn.Module:
        if self.copy is None:
            return self.source
        # Looked up by name at every refresh, so a master parameter replaced since (a LoRA merge, a load with
        # assign=True) is still the one copied. A tied weight is listed under both of its names.
        masters = dict(self.source.named_parameters(remove_duplicate=False))
        for name, mine in self.copy.named_parameters(remove_duplicate=False):
            mine.copy_(masters[name])
        return self.copy
