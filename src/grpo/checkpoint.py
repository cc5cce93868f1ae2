"""Checkpoints: an HF model directory anyone can ``from_pretrained``, plus the state to resume training.

Layout of ``<output_dir>/checkpoint-<step>/``:
- ``config.json``, ``model.safetensors``, tokenizer files: the policy, LoRA merged in;
- ``training_state.safetensors``: optimizer moments, RNG states and, with LoRA, the unmerged adapters;
- ``training_state.json``: step, data order, scheduler, optimizer hyper-parameters, RNG scalars.

Only safetensors and JSON: nothing is unpickled on load. A checkpoint is written to a temporary
directory and renamed into place, so a crash never leaves a half-written ``checkpoint-<step>``.
"""
from __future__ import annotations

import copy
import json
import random
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from grpo.schedule import warmup_cosine
from policy import merge_lora

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
    skipped_steps: int = 0
    """Steps skipped for non-finite rewards, loss or gradients, over the whole run."""
    nonfinite_in_a_row: int = 0
    """The current run of such steps; ``max_nonfinite_steps`` of them stop the run."""


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
    cuda = [tensors[f"rng.cuda.{i}"] for i in range(sum(k.startswith("rng.cuda.") for k in tensors))]
    if cuda and torch.cuda.is_available():
        # A run resumed on a host with fewer GPUs restores the devices it has.
        for device, state in enumerate(cuda[: torch.cuda.device_count()]):
            torch.cuda.set_rng_state(state, device)


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
    bad = next((k for k, v in model_state_for_export.items() if v.is_floating_point() and not torch.isfinite(v).all()),
               None)
    if bad is not None:  # the non-finite guard should make this unreachable; a NaN checkpoint poisons --resume
        raise ValueError(f"refusing to write checkpoint-{state.step}: weight {bad} is not finite")
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


class CheckpointError(ValueError):
    """A checkpoint that cannot be read or does not fit the model; the message names the file."""


@dataclass
class CheckpointData:
    """Everything a checkpoint holds, read and checked before any of it touches the model."""

    path: Path
    tensors: dict[str, torch.Tensor]
    meta: dict
    weights: dict[str, torch.Tensor]
    """Trainable weights: the adapters (LoRA) or the HF directory's full state dict."""
    adapters: bool


def read_checkpoint(path: str | Path) -> CheckpointData:
    """Read ``path``'s files, or raise :class:`CheckpointError` naming the damaged file.

    Reading is kept apart from applying, so a truncated or non-finite checkpoint is found before it
    changes the model, and resume can fall back to an older one."""
    path = Path(path)
    tensors = _read(path / STATE_TENSORS, lambda f: load_file(str(f)))
    meta = _read(path / STATE_JSON, lambda f: json.loads(f.read_text()))
    missing = {"state", "scheduler", "optimizer", "rng"} - set(meta)
    if missing:
        raise CheckpointError(f"{path / STATE_JSON}: missing {sorted(missing)}")
    adapters = {k[len("adapter."):]: v for k, v in tensors.items() if k.startswith("adapter.")}
    weights = adapters or _load_hf_weights(path)
    bad = next((k for k, v in weights.items() if v.is_floating_point() and not torch.isfinite(v).all()), None)
    if bad is not None:
        raise CheckpointError(f"{path}: weight {bad} is not finite")
    return CheckpointData(path, tensors, meta, weights, bool(adapters))


def _read(file: Path, reader):
    try:
        return reader(file)
    except Exception as err:  # safetensors, JSON and OS errors alike: what matters is which file
        raise CheckpointError(f"{file}: {type(err).__name__}: {err}") from None


_IMPLEMENTATION_FLAGS = ("fused", "foreach", "capturable", "differentiable")
"""Optimizer settings that choose how the update is computed, not what it is."""


def apply_checkpoint(data: CheckpointData, model, optimizer: torch.optim.Optimizer, scheduler,
                     generator: torch.Generator) -> TrainingState:
    """Restore weights, optimizer, scheduler and RNGs in place; return the loop's state.

    Trainable weights come from the adapters in the state file when there are any (LoRA), else from the
    HF directory's ``model.safetensors`` (full fine-tuning).
    """
    path, tensors, meta = data.path, data.tensors, data.meta
    device = next(model.parameters()).device
    if data.adapters:
        missing = set(data.weights) - {n for n, _ in model.named_parameters()}
        if missing:
            raise CheckpointError(f"{path}: adapters {sorted(missing)[:3]} do not match the model (is LoRA on?)")
        model.load_state_dict({k: v.to(device) for k, v in data.weights.items()}, strict=False)
    else:
        result = model.load_state_dict(data.weights, strict=False)
        real_missing = [k for k in result.missing_keys if not _is_tied(model, k)]
        if real_missing or result.unexpected_keys:
            raise CheckpointError(f"{path}: weights do not fit the model: missing {real_missing[:3]}, "
                                  f"unexpected {result.unexpected_keys[:3]}")
    opt_state = _unflatten_optimizer({k: v.to(device) if k.endswith(("exp_avg", "exp_avg_sq")) else v
                                      for k, v in tensors.items()}, meta["optimizer"])
    # load_state_dict takes the saved groups' settings whole: keep the configured implementation (train.optim),
    # which also decides where torch puts each ``step`` while loading.
    for saved, live in zip(opt_state["param_groups"], optimizer.param_groups):
        saved.update({k: live[k] for k in _IMPLEMENTATION_FLAGS if k in live})
    optimizer.load_state_dict(opt_state)
    scheduler.load_state_dict(meta["scheduler"])
    _set_rng_state(tensors, meta["rng"], generator)
    return TrainingState(**meta["state"])


def load_checkpoint(
    path: str | Path, model, optimizer: torch.optim.Optimizer, scheduler, generator: torch.Generator
) -> TrainingState:
    """Read ``path`` and restore it in place (see :func:`apply_checkpoint`)."""
    return apply_checkpoint(read_checkpoint(path), model, optimizer, scheduler, generator)


def load_latest_checkpoint(output_dir: str | Path, model, optimizer, scheduler,
                           generator: torch.Generator) -> tuple[Path, TrainingState] | None:
    """Restore the newest checkpoint of ``output_dir`` that reads cleanly; None when there is none.

    A damaged newest checkpoint (a truncated file, non-finite weights) is skipped with a line that says
    why, and the one before it is used: losing ``save_steps`` steps beats losing the run."""
    found = checkpoint_dirs(output_dir)
    skipped = []
    for path in reversed(found):
        try:
            data = read_checkpoint(path)
        except CheckpointError as err:
            print(f"--resume: skipping {path.name}: {err}")
            skipped.append(str(err))
            continue
        return path, apply_checkpoint(data, model, optimizer, scheduler, generator)
    if skipped:
        raise CheckpointError(f"no checkpoint in {output_dir} can be read: " + "; ".join(skipped))
    return None


def _load_hf_weights(path: Path) -> dict[str, torch.Tensor]:
    files = sorted(path.glob("model*.safetensors"))
    if not files:
        raise CheckpointError(f"{path}: no model*.safetensors")
    weights: dict[str, torch.Tensor] = {}
    for f in files:
        weights.update(_read(f, lambda f: load_file(str(f))))
    return weights


def _is_tied(model, key: str) -> bool:
    return key == "lm_head.weight" and getattr(model.config, "tie_word_embeddings", False)


# ----------------------------------------------------------------------------- export


def export_state_dict(model, use_lora: bool) -> dict[str, torch.Tensor]:
    """The plain HF state dict of the policy, with LoRA merged into a copy (training goes on unmerged)."""
    if not use_lora:
        return {k: v.detach() for k, v in model.state_dict().items()}
    merged = copy.deepcopy(model)
    merge_lora(merged)
    return merged.state_dict()


def adapter_state(model) -> dict[str, torch.Tensor]:
    """The trainable tensors only: with LoRA, the unmerged adapters that resume needs."""
    return {n: p.detach() for n, p in model.named_parameters() if p.requires_grad}


# ----------------------------------------------------------------------------- the run folder


def check_output_dir(output_dir: str | Path, resume: bool, overwrite: bool) -> None:
    """Refuse to start a fresh run in a folder that holds another run's checkpoints.

    Mixing two runs there would prune the new checkpoints by step against the old ones and make a later
    ``--resume`` continue the wrong run. Cheap, so the CLI calls it before anything expensive."""
    found = checkpoint_dirs(output_dir)
    if found and not resume and not overwrite:
        raise FileExistsError(f"{output_dir} holds checkpoints of an earlier run ({found[-1].name}): continue it "
                              f"with --resume, or replace it with --overwrite")


def clear_output_dir(output_dir: str | Path) -> None:
    """``--overwrite``: remove an earlier run's checkpoints, events, result and configs (nothing else)."""
    root = Path(output_dir)
    for path in [*checkpoint_dirs(root), *root.glob(f".tmp-{PREFIX}*"), root / "tb"]:
        shutil.rmtree(path, ignore_errors=True)
    for path in [root / "result.json", *root.glob("config*.json")]:
        path.unlink(missing_ok=True)


def write_run_config(output_dir: Path, run_config: dict, step: int) -> None:
    """``config.json`` holds this run's settings; a resumed run that changed them keeps the earlier file
    as ``config.until-step-<N>.json``, so every step's settings stay on record."""
    path = output_dir / "config.json"
    text = json.dumps(run_config, indent=1, default=str)
    if step and path.exists() and path.read_text() != text:
        path.rename(output_dir / f"config.until-step-{step}.json")
    path.write_text(text)


def stretch_schedule(optimizer: torch.optim.Optimizer, cfg, step: int, old_max_steps: int) -> None:
    """Follow the new ``cfg.max_steps`` from the next step on: the cosine is a function of the horizon, and
    the optimizer would otherwise take one more step at the old schedule's rate, then jump."""
    old_lr = optimizer.param_groups[0]["lr"]
    for group in optimizer.param_groups:
        group["lr"] = group["initial_lr"] * warmup_cosine(step, cfg.warmup_steps, cfg.max_steps, cfg.min_lr_ratio)
    print(f"--resume: max_steps {old_max_steps} -> {cfg.max_steps}: the learning-rate schedule now decays to "
          f"step {cfg.max_steps}; the next step's rate is {optimizer.param_groups[0]['lr']:.3g} "
          f"(the checkpoint's schedule: {old_lr:.3g})")
