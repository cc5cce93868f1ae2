"""A learned relevance judge: a cross-encoder that scores (query, product title) pairs.

Home Depot judges about 6 products a query, all of them products its own engine showed, so a reward that reads
only the judgements cannot pay for a relevant product nobody judged. The judge is trained once on the training
split's graded judgements (:mod:`reward.judge_train`) and then scores every product the engine returns, judged
or not. It is a standard HF sequence-classification folder with one logit (what sentence-transformers'
``CrossEncoder`` loads), so it can be inspected, replaced or served by other tools.
"""
from __future__ import annotations

from contextlib import nullcontext
from pathlib import Path

import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer

__all__ = ["RelevanceJudge"]


class RelevanceJudge:
    """Score (query, title) pairs with a cross-encoder: ``sigmoid(logit)`` in [0, 1], the judge's estimate of
    gain / max gain.

    Args:
        model: an HF folder or id of a sequence-classification model with one label.
        device: "cpu", "cuda", ...; default cuda when available.
        max_length: tokens per (query, title) pair; queries and titles are short.
        batch_size: pairs per forward pass.
        bf16: matrix products in bf16 under autocast (where native: the caller decides); the score is fp32.
        new_head: ``model`` is a plain encoder to fine-tune (``leser judge train``): give it a fresh one-logit head.

    Scores are cached per (query, catalog row) in :meth:`rows`: a group's completions, and every GRPO iteration
    over them, meet the same products again.
    """

    def __init__(self, model: str, device: str | None = None, max_length: int = 48, batch_size: int = 256,
                 bf16: bool = False, new_head: bool = False):
        path = Path(model).expanduser()
        if path.is_dir() and not (path / "config.json").is_file():
            raise FileNotFoundError(f"judge {model}: not an HF model folder (no config.json); "
                                    "train one with `leser judge train`")
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.tokenizer = AutoTokenizer.from_pretrained(str(path) if path.is_dir() else model)
        head = {"num_labels": 1} if new_head else {}
        self.model = AutoModelForSequenceClassification.from_pretrained(str(path) if path.is_dir() else model, **head)
        if self.model.config.num_labels != 1:
            raise ValueError(f"judge {model}: needs one output label (a relevance logit), "
                             f"has {self.model.config.num_labels}")
        self.model.to(self.device).eval()
        self.max_length, self.batch_size, self.bf16 = max_length, batch_size, bf16
        self._cache: dict[tuple[str, int], float] = {}
        self.pairs_scored = 0
        """Pairs run through the model so far (cache misses): what the judge cost."""

    def __repr__(self) -> str:
        return f"RelevanceJudge({self.model.config.name_or_path!r}, device={self.device}, bf16={self.bf16})"

    def encode_pairs(self, queries: list[str], titles: list[str]) -> dict[str, torch.Tensor]:
        """Token ids ``[n, T]`` of ``[CLS] query [SEP] title [SEP]``, padded; the training loop uses the same."""
        return self.tokenizer(list(queries), list(titles), truncation=True, max_length=self.max_length,
                              padding=True, return_tensors="pt")

    def logits(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """``[n]`` relevance logits of an :meth:`encode_pairs` batch (with gradients when the model trains)."""
        batch = {k: v.to(self.device) for k, v in batch.items()}
        autocast = (torch.autocast(self.device.type, dtype=torch.bfloat16) if self.bf16 else nullcontext())
        with autocast:
            return self.model(**batch).logits[:, 0].float()

    @torch.inference_mode()
    def score(self, queries: list[str], titles: list[str]) -> torch.Tensor:
        """``[n]`` scores in [0, 1] of the pairs ``(queries[i], titles[i])``, float32 on CPU, no cache."""
        out = torch.empty(len(queries))
        # Sorted by length so that a batch pads little; the order of the answer is the order of the input.
        order = sorted(range(len(queries)), key=lambda i: len(queries[i]) + len(titles[i]))
        for start in range(0, len(order), self.batch_size):
            idx = order[start:start + self.batch_size]
            batch = self.encode_pairs([queries[i] for i in idx], [titles[i] for i in idx])
            out[idx] = torch.sigmoid(self.logits(batch)).cpu()
        self.pairs_scored += len(queries)
        return out

    def rows(self, query: str, rows: list[int], product_texts: list[str]) -> torch.Tensor:
        """``[len(rows)]`` scores of catalog ``rows`` for ``query``; -1 rows (no result) score 0. Cached."""
        missing = list(dict.fromkeys(r for r in rows if r >= 0 and (query, r) not in self._cache))
        if missing:
            for r, s in zip(missing, self.score([query] * len(missing), [product_texts[r] for r in missing]).tolist()):
                self._cache[(query, r)] = s
        return torch.tensor([self._cache[(query, r)] if r >= 0 else 0.0 for r in rows])

    def score_many(self, queries: list[str], rows: list[list[int]], product_texts: list[str]) -> list[torch.Tensor]:
        """:meth:`rows` for several queries with one batched model call for all their cache misses."""
        missing = list(dict.fromkeys((q, r) for q, rs in zip(queries, rows) for r in rs
                                     if r >= 0 and (q, r) not in self._cache))
        if missing:
            found = self.score([q for q, _ in missing], [product_texts[r] for _, r in missing]).tolist()
            self._cache.update(zip(missing, found))
        return [self.rows(q, rs, product_texts) for q, rs in zip(queries, rows)]
