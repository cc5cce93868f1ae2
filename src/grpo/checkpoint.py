"""Checkpoints: an HF model directory anyone can ``from_pretrained``, plus the state to resume training.

Layout of ``<output_dir>/checkpoint-<step>/``:
- ``config.json``, ``model.safetensors``, tokenizer files: the policy, LoRA merged in;
- ``training_state.safetensors``: optimizer moments, RNG states and, with LoRA, the unmerged adapters;
- ``training_state.json``: step, data order, scheduler, optimizer hyper-parameters, RNG scalars.

Only safetensors and JSON: nothing is unpickled on load. A checkpoint is written to a temporary
directory and renamed into place, so a crash never leaves a half-written ``checkpoint-<step>``.
"""
from __future__ import annotations

import json
import random
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file

STATE_TENSORS = "training_state.safetensors"
STATE_JSON = "training_state.json"
PREFIX = "checkpoint-"


@dataclass
class TrainingState:
    """What the loop needs, beside the weights and the optimizer, to continue exactly where it stopped."""

    step: int = 0
    data_order: list[str] = field(default_factory=list)
    data_cursor: int = 0
    epoch: int = 0
    history: dict[str, float] = field(default_factory=dict)
    max_steps: int = 0
    """The horizon the learning-rate schedule decayed to (0: a checkpoint written before it was recorded)."""


def checkpoint_dirs(output_dir: str | Path) -> list[Path]:
    """Completed checkpoints, oldest first."""
    root = Path(output_dir)
    found = [p for p in root.glob(f"{PREFIX}*") if p.is_dir() and p.name[len(PREFIX):].isdigit()]
    return sorted(found, key=lambda p: int(p.name[len(PREFIX):]))


def _rng_state(generator: torch.Generator) -> tuple[dict[str, torch.Tensor], dict]:
    np_state = np.random.get_state()
    tensors = {
        "rng.torch": torch.get_rng_state(),
        "rng.sampling": generator.get_state(),
        "rng.numpy": torch.from_numpy(np_state[1].astype(np.int64)),
    }
    if torch.cuda.is_available():
        for i, s in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"rng.cuda.{i}"] = s
    py_version, py_state, py_gauss = random.getstate()
    scalars = {"python": [py_version, list(py_state), py_gauss], "numpy": [np_state[0], *np_state[2:]]}
    return tensors, scalars


def _set_rng_state(tensors: dict[str, torch.Tensor], scalars: dict, generator: torch.Generator) -> None:
    torch.set_rng_state(tensors["rng.torch"])
    generator.set_state(tensors["rng.sampling"])
    name, pos, has_gauss, gauss = scalars["numpy"]
    np.random.set_state((name, tensors["rng.numpy"].numpy().astype(np.uint32), pos, has_gauss, gauss))
    version, state, gauss = scalars["python"]
    random.setstate((version, tuple(state), gauss))
    cuda = [tensors[k] for k in sorted(k for k in tensors if k.startswith("rng.cuda."))]
    if cuda and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(cuda)


def _flatten_optimizer(optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict]:
    sd = optimizer.state_dict()
    tensors = {
        f"optimizer.{idx}.{key}": value.contiguous()
        for idx, slots in sd["state"].items()
        for key, value in slots.items()
    }
    return tensors, {"param_groups": sd["param_groups"]}


def _unflatten_optimizer(tensors: dict[str, torch.Tensor], meta: dict) -> dict:
    state: dict[int, dict[str, torch.Tensor]] = {}
    for name, value in tensors.items():
        if name.startswith("optimizer."):
            _, idx, key = name.split(".", 2)
            state.setdefault(int(idx), {})[key] = value
    return {"state": state, "param_groups": meta["param_groups"]}


def save_checkpoint(
    output_dir: str | Path,
    model_state_for_export: dict[str, torch.Tensor],
    model,
    tokenizer,
    optimizer: torch.optim.Optimizer,
    scheduler,
    generator: torch.Generator,
    state: TrainingState,
    adapter_state: dict[str, torch.Tensor] | None = None,
    save_total_limit: int = 2,
) -> Path:
    """Write ``checkpoint-<step>`` atomically and prune old ones. Returns its path.

    ``model_state_for_export`` is the plain (LoRA-merged) state dict that goes into the HF directory;
    ``model`` supplies ``save_pretrained`` and its config.
    """
    output_dir = Path(output_dir)
    final = output_dir / f"{PREFIX}{state.step}"
    tmp = output_dir / f".tmp-{PREFIX}{state.step}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    model.save_pretrained(tmp, state_dict=model_state_for_export, safe_serialization=True)
    tokenizer.save_pretrained(tmp)

    rng_tensors, rng_scalars = _rng_state(generator)
    opt_tensors, opt_meta = _flatten_optimizer(optimizer)
    tensors = {**rng_tensors, **opt_tensors}
    for name, value in (adapter_state or {}).items():
        tensors[f"adapter.{name}"] = value.detach().contiguous()
    save_file({k: v.cpu() for k, v in tensors.items()}, str(tmp / STATE_TENSORS))
    meta = {
        "state": state.__dict__,
        "scheduler": scheduler.state_dict(),
        "optimizer": opt_meta,
        "rng": rng_scalars,
    }
    (tmp / STATE_JSON).write_text(json.dumps(meta, indent=1, default=_json_default))

    if final.exists():
        shutil.rmtree(final)
    tmp.rename(final)
    for old in checkpoint_dirs(output_dir)[:-save_total_limit]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def _json_default(value):
    if isinstance(value, tuple):
        return list(value)
    if isinstance(value, torch.Tensor):
        return value.item()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def load_checkpoint(
    path: str | Path, model, optimizer: torch.optim.Optimizer, scheduler, generator: torch.Generator
) -> TrainingState:
    """Restore weights, optimizer, scheduler and RNGs from ``path`` in place; return the loop's state.

    Trainable weights come from the adapters in the state file when there are any (LoRA), else from the
    HF directory's ``model.safetensors`` (full fine-tuning).
    """
    path = Path(path)
    tensors = load_file(str(path / STATE_TENSORS))
    meta = json.loads((path / STATE_JSON).read_text())
    adapters = {k[len("adapter."):]: v for k, v in tensors.items() if k.startswith("adapter.")}
    device = next(model.parameters()).device
    if adapters:
        missing = set(adapters) - {n for n, _ in model.named_parameters()}
        if missing:
            raise ValueError(f"{path}: adapters {sorted(missing)[:3]} do not match the model (is LoRA on?)")
        model.load_state_dict({k: v.to(device) for k, v in adapters.items()}, strict=False)
    else:
        weights = _load_hf_weights(path)
        result = model.load_state_dict(weights, strict=False)
        real_missing = [k for k in result.missing_keys if not _is_tied(model, k)]
        if real_missing or result.unexpected_keys:
            raise ValueError(f"{path}: weights do not fit the model: missing {real_missing[:3]}, "
                             f"unexpected {result.unexpected_keys[:3]}")
    opt_state = _unflatten_optimizer({k: v.to(device) if k.endswith(("exp_avg", "exp_avg_sq")) else v
                                      for k, v in tensors.items()}, meta["optimizer"])
    optimizer.load_state_dict(opt_state)
    scheduler.load_state_dict(meta["scheduler"])
    _set_rng_state(tensors, meta["rng"], generator)
    return TrainingState(**meta["state"])


def _load_hf_weights(path: Path) -> dict[str, torch.Tensor]:
    files = sorted(path.glob("model*.safetensors"))
    if not files:
        raise FileNotFoundError(f"{path}: no model*.safetensors")
    weights: dict[str, torch.Tensor] = {}
    for f in files:
        weights.update(load_file(str(f)))
    return weights


def _is_tied(model, key: str) -> bool:
    return key == "lm_head.weight" and getattr(model.config, "tie_word_embeddings", False)
