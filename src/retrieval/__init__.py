"""Retrieval for LESER: data sets, sentence encoder, in-process search engines, fusion and ranking metrics.

Names are imported lazily, so ``from retrieval import load_dataset`` does not pay for importing transformers.
"""
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

_EXPORTS = {
    "datasets": ("Dataset", "DatasetError", "SPLITS", "load_dataset", "normalise_query", "query_id_for", "split_of"),
    "encoder": ("Encoder", "default_encoder_path"),
    "engine": ("BM25Engine", "DenseEngine", "ProductIdEngine", "SearchEngine", "exact_topk"),
    "fusion": ("fuse", "fuse_with_scores"),
    "plan": ("PLAN_KINDS", "RetrievalPlan"),
    "metrics": ("dcg_at_k", "evaluate_rankings", "mrr_at_k", "ndcg_at_k", "paired_bootstrap", "query_metrics",
                "recall_at_k"),
    "paths": ("cache_dir", "data_root"),
    "prf": ("CatalogVocabulary", "term_expansions", "title_expansions"),
    "spelling": ("Speller",),
}
_MODULE_OF = {name: module for module, names in _EXPORTS.items() for name in names}

__all__ = sorted(_MODULE_OF)

if TYPE_CHECKING:
    from .datasets import Dataset, DatasetError, SPLITS, load_dataset, normalise_query, query_id_for, split_of
    from .encoder import Encoder, default_encoder_path
    from .engine import BM25Engine, DenseEngine, ProductIdEngine, SearchEngine, exact_topk
    from .fusion import fuse, fuse_with_scores
    from .metrics import (dcg_at_k, evaluate_rankings, mrr_at_k, ndcg_at_k, paired_bootstrap, query_metrics,
                          recall_at_k)
    from .paths import cache_dir, data_root
    from .plan import PLAN_KINDS, RetrievalPlan
    from .prf import CatalogVocabulary, term_expansions, title_expansions
    from .spelling import Speller


def __getattr__(name: str):
    module = _MODULE_OF.get(name)
    if module is None:
        raise AttributeError(f"module 'retrieval' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value  # later look-ups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
