"""A minimal hand-written LoRA (Hu et al., 2021) in pure PyTorch.

``apply_lora`` swaps matching ``nn.Linear`` modules for :class:`LoraLinear` (frozen base + trainable
low-rank update ``B @ A * alpha / r``) and freezes everything else. ``merge_lora`` folds the update
back into plain ``nn.Linear`` modules so the model saves and reloads as an ordinary HF checkpoint.
"""
from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn

DEFAULT_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


@dataclass
class LoraConfig:
    """Rank ``r``, scale ``alpha / r``, dropout on the LoRA input, and the Linear leaf names to adapt."""

    r: int = 16
    alpha: float = 32
    dropout: float = 0.0
    target_modules: tuple[str, ...] = DEFAULT_TARGETS

    def __post_init__(self) -> None:
        if self.r < 1:
            raise ValueError("LoRA rank r must be >= 1")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError("dropout must be in [0, 1)")
        self.target_modules = tuple(self.target_modules)

    @property
    def scale(self) -> float:
        return self.alpha / self.r


class LoraLinear(nn.Module):
    """``y = base(x) + dropout(x) @ A^T @ B^T * scale`` with ``A [r, in]``, ``B [out, r]``.

    ``B`` starts at zero, so a freshly wrapped layer computes exactly what the base layer did.
    """

    def __init__(self, base: nn.Linear, r: int, alpha: float, dropout: float = 0.0) -> None:
        super().__init__()
        self.base = base
        self.base.requires_grad_(False)
        self.r, self.scale = r, alpha / r
        weight = base.weight
        self.lora_A = nn.Parameter(torch.empty(r, base.in_features, dtype=weight.dtype, device=weight.device))
        self.lora_B = nn.Parameter(torch.zeros(base.out_features, r, dtype=weight.dtype, device=weight.device))
        # Same init as the reference implementation / PEFT: A random, B zero.
        nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()

    @property
    def in_features(self) -> int:
        return self.base.in_features

    @property
    def out_features(self) -> int:
        return self.base.out_features

    @property
    def weight(self) -> torch.Tensor:
        """The frozen base weight (some HF code inspects ``module.weight.dtype``)."""
        return self.base.weight

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x [..., in]`` -> ``[..., out]``."""
        update = (self.dropout(x) @ self.lora_A.t().to(x.dtype)) @ self.lora_B.t().to(x.dtype)
        return self.base(x) + update * self.scale

    def delta_weight(self) -> torch.Tensor:
        """``[out, in]``: the dense weight update ``B @ A * scale``."""
        return (self.lora_B @ self.lora_A) * self.scale

    def merged(self) -> nn.Linear:
        """A plain ``nn.Linear`` with the update folded into its weight."""
        base = self.base
        linear = nn.Linear(base.in_features, base.out_features, bias=base.bias is not None,
                           device=base.weight.device, dtype=base.weight.dtype)
        with torch.no_grad():
            linear.weight.copy_(base.weight + self.delta_weight().to(base.weight.dtype))
            if base.bias is not None:
                linear.bias.copy_(base.bias)
        return linear

    def extra_repr(self) -> str:
        return f"r={self.r}, scale={self.scale}"


def _set_submodule(model: nn.Module, name: str, module: nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    setattr(model.get_submodule(parent_name) if parent_name else model, child, module)


def _targets(model: nn.Module, target_modules: tuple[str, ...]) -> list[str]:
    """Names of ``nn.Linear`` modules whose leaf name is in ``target_modules``."""
    return [
        name for name, module in model.named_modules()
        if type(module) is nn.Linear and name.rpartition(".")[2] in target_modules
    ]


def apply_lora(model: nn.Module, cfg: LoraConfig) -> list[nn.Parameter]:
    """Wrap matching Linear layers in :class:`LoraLinear`, freeze all other parameters in place.

    Returns the trainable LoRA parameters (pass them to the optimizer). Raises if nothing matched.
    """
    names = _targets(model, cfg.target_modules)
    if not names:
        raise ValueError(f"no nn.Linear named any of {cfg.target_modules} in {type(model).__name__}")
    model.requires_grad_(False)
    for name in names:
        _set_submodule(model, name, LoraLinear(model.get_submodule(name), cfg.r, cfg.alpha, cfg.dropout))
    return [p for module in lora_modules(model) for p in (module.lora_A, module.lora_B)]


def lora_modules(model: nn.Module) -> list[LoraLinear]:
    return [m for m in model.modules() if isinstance(m, LoraLinear)]


def merge_lora(model: nn.Module) -> nn.Module:
    """Fold every LoRA update into its base weight and restore plain ``nn.Linear`` modules (in place).

    Parameters stay frozen (``requires_grad=False``); re-enable them if full fine-tuning follows.
    """
    for name, module in list(model.named_modules()):
        if isinstance(module, LoraLinear):
            _set_submodule(model, name, module.merged().requires_grad_(False))
    return model


def lora_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """Only the LoRA tensors (``...lora_A`` / ``...lora_B``), detached, keyed like ``model.state_dict()``."""
    return {k: v.detach().clone() for k, v in model.state_dict().items() if k.endswith((".lora_A", ".lora_B"))}


def save_adapter(model: nn.Module, path: str | Path, cfg: LoraConfig, peft: bool = True) -> Path:
    """Write only the LoRA tensors to one safetensors file, with ``cfg`` in its metadata.

    A few MB instead of the whole model: what to ship back from a remote GPU run, or to keep per experiment.
    With ``peft``, the same adapter is also written in PEFT's format to the ``peft/`` folder beside it
    (:func:`save_peft_adapter`), so ``peft.PeftModel.from_pretrained(base, path.parent / "peft")`` loads it.
    A subfolder, not ``path.parent`` itself: when a folder holds both a model and ``adapter_config.json``,
    transformers' ``from_pretrained`` applies the adapter on top, which would add a merged LoRA twice.
    """
    from safetensors.torch import save_file

    tensors = {k: v.contiguous() for k, v in lora_state_dict(model).items()}
    if not tensors:
        raise ValueError("the model has no LoRA layers to save")
    meta = {"lora_config": json.dumps({**asdict(cfg), "target_modules": list(cfg.target_modules)})}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(path), metadata=meta)
    if peft:
        save_peft_adapter(model, path.parent / PEFT_DIR, cfg)
    return path


PEFT_CONFIG_FILE, PEFT_WEIGHTS_FILE = "adapter_config.json", "adapter_model.safetensors"
PEFT_DIR = "peft"
"""Where :func:`save_adapter` puts the PEFT copy, relative to its own file's folder."""


def peft_adapter_config(model: nn.Module, cfg: LoraConfig, base_model: str | None = None) -> dict:
    """PEFT's ``adapter_config.json`` for this adapter (peft ``tuners/lora/config.py`` field names).

    Only the fields that decide how PEFT rebuilds the layers are written; PEFT fills the rest with its
    defaults, so older and newer PEFT versions both read the file. ``target_modules`` lists the leaf names
    that were actually adapted, which PEFT matches as suffixes of module paths, as :func:`apply_lora` does.
    """
    adapted = sorted({name.rpartition(".")[2] for name, m in model.named_modules() if isinstance(m, LoraLinear)})
    alpha = int(cfg.alpha) if float(cfg.alpha).is_integer() else cfg.alpha
    return {
        "peft_type": "LORA", "task_type": "CAUSAL_LM",
        "base_model_name_or_path": base_model or getattr(model, "name_or_path", None) or None,
        "r": cfg.r, "lora_alpha": alpha, "lora_dropout": cfg.dropout, "target_modules": adapted,
        "bias": "none", "fan_in_fan_out": False, "use_rslora": False, "use_dora": False,
        "init_lora_weights": True, "modules_to_save": None, "inference_mode": True,
        "layers_to_transform": None, "layers_pattern": None, "rank_pattern": {}, "alpha_pattern": {},
        "revision": None,
    }


def peft_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """The LoRA tensors under PEFT's saved key names: ``base_model.model.<module path>.lora_A.weight``.

    PEFT's ``lora_A``/``lora_B`` are Linear layers whose weights are ``[r, in]``/``[out, r]``, the shapes of
    ours, and its scale is ``lora_alpha / r`` as here, so the tensors travel unchanged."""
    return {f"base_model.model.{k}.weight": v.contiguous() for k, v in lora_state_dict(model).items()}


def save_peft_adapter(model: nn.Module, folder: str | Path, cfg: LoraConfig, base_model: str | None = None) -> Path:
    """Write ``adapter_config.json`` + ``adapter_model.safetensors`` into ``folder``, as PEFT's ``save_pretrained``
    does, for users whose stack loads adapters with ``peft`` (vLLM, TGI, ``PeftModel.from_pretrained``)."""
    from safetensors.torch import save_file

    tensors = peft_state_dict(model)
    if not tensors:
        raise ValueError("the model has no LoRA layers to save")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(folder / PEFT_WEIGHTS_FILE), metadata={"format": "pt"})
    config = peft_adapter_config(model, cfg, base_model)
    (folder / PEFT_CONFIG_FILE).write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
    return folder


def load_adapter(model: nn.Module, path: str | Path) -> nn.Module:
    """Apply the LoRA saved by :func:`save_adapter` to a plain base ``model`` and merge it in (in place)."""
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata() or {}
        if "lora_config" not in meta:
            raise ValueError(f"{path}: not a LESER adapter file (no lora_config in its metadata)")
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    cfg = LoraConfig(**json.loads(meta["lora_config"]))
    apply_lora(model, cfg)
    expected = set(lora_state_dict(model))
    if set(tensors) != expected:
        missing, extra = sorted(expected - set(tensors))[:2], sorted(set(tensors) - expected)[:2]
        raise ValueError(f"{path}: adapter keys do not match the model (missing {missing}, extra {extra})")
    model.load_state_dict(tensors, strict=False)
    return merge_lora(model)
