"""Build the run's objects (data set, engine, reward, policy) from a :class:`LeserConfig`."""
from __future__ import annotations

import logging

from leser.config import ConfigError, LeserConfig
from retrieval import Dataset, DenseEngine, Encoder, load_dataset
from reward import SearchReward

log = logging.getLogger(__name__)

ENGINE_KINDS = ("dense", "bm25", "hybrid")


def build_engine(cfg: LeserConfig, dataset: Dataset, kind: str | None = None):
    kind = kind or cfg.engine.kind
    if kind not in ENGINE_KINDS:
        raise ConfigError(f"[engine] kind must be one of {ENGINE_KINDS}, got {kind!r}")
    if kind == "bm25":
        from retrieval import BM25Engine

        return BM25Engine(dataset.product_texts)
    dense = DenseEngine(dataset.product_texts, Encoder(cfg.engine.encoder, max_length=cfg.engine.max_length))
    if kind == "dense":
        return dense
    from retrieval import BM25Engine, HybridEngine

    return HybridEngine(dense, BM25Engine(dataset.product_texts))


def build_reward(cfg: LeserConfig, dataset: Dataset | None = None, engine=None) -> SearchReward:
    dataset = dataset or load_dataset(cfg.data.path)
    engine = engine or build_engine(cfg, dataset)
    return SearchReward(dataset, engine, cfg.reward, cfg.rules)


def trainable_queries(cfg: LeserConfig, dataset: Dataset, split: str) -> list[str]:
    """Query ids of ``split`` that can teach something: with labels, those with a relevant item."""
    qids = dataset.split(split)
    if cfg.reward.relevance == "labels":
        qids = [q for q in qids if dataset.relevant(q)]
    return sorted(qids)
