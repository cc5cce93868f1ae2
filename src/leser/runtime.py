"""Build the run's objects (data set, engines, retrieval plan, reward, policy) from a :class:`LeserConfig`."""
from __future__ import annotations

import dataclasses
import importlib
import logging

from leser.config import ConfigError, LeserConfig
from retrieval import Dataset, Speller, load_dataset
from retrieval.plan import DEFAULT_FUSION, PLAN_KINDS, FusionSettings, RetrievalPlan
from reward import SearchReward
from reward.search_reward import JUDGED_MODES

log = logging.getLogger(__name__)


class Engines:
    """The in-process engines over one catalog, each built on first use and shared by every plan."""

    def __init__(self, cfg: LeserConfig, dataset: Dataset):
        self.cfg, self.dataset, self._built = cfg, dataset, {}

    def get(self, name: str):
        if name not in self._built:
            self._built[name] = self._build(name)
        return self._built[name]

    def _build(self, name: str):
        texts, engine_cfg = self.dataset.product_texts, self.cfg.engine
        if name.startswith("python:"):
            return user_engine(name, self.dataset)
        if name == "bm25":
            from retrieval import BM25Engine

            return BM25Engine(texts, stemmer=engine_cfg.stemmer or None)
        from retrieval import DenseEngine, Encoder

        return DenseEngine(texts, Encoder(engine_cfg.encoder, max_length=engine_cfg.max_length), show_progress=True)


USER_FUSION = FusionSettings(original_weight=1.0, expansion_weight=1.0, rrf_k=60)
"""A user engine's fusion unless ``[engine]`` says otherwise: plain RRF."""


def user_engine(spec: str, dataset: Dataset):
    """``python:MODULE:FACTORY`` -> ``FACTORY(dataset)``: the user's engine, with the engines' ``search``."""
    module_name, _, factory_name = spec.removeprefix("python:").partition(":")
    try:
        factory = getattr(importlib.import_module(module_name), factory_name)
    except (ImportError, AttributeError) as err:
        raise ConfigError(f"[engine] kind = {spec!r}: cannot import {factory_name} from {module_name} "
                          f"({err})") from None
    if not callable(factory):
        raise ConfigError(f"[engine] kind = {spec!r}: {module_name}.{factory_name} is not callable")
    engine = factory(dataset)
    if not callable(getattr(engine, "search", None)):
        raise ConfigError(f"[engine] kind = {spec!r}: {factory_name}(dataset) returned {type(engine).__name__}, "
                          "which has no search(texts, k) method")
    return engine


def fusion_settings(cfg: LeserConfig, kind: str) -> FusionSettings:
    """The plan's default weights, overridden by ``[engine]`` for the configured plan only."""
    default = DEFAULT_FUSION.get(kind, USER_FUSION)
    if kind != cfg.engine.kind:
        return default
    overrides = {name: getattr(cfg.engine, name) for name in ("original_weight", "expansion_weight", "rrf_k")}
    return dataclasses.replace(default, **{k: v for k, v in overrides.items() if v is not None})


def build_plan(cfg: LeserConfig, dataset: Dataset, kind: str | None = None, engines: Engines | None = None
               ) -> RetrievalPlan:
    """The retrieval plan ``kind`` (default: ``[engine] kind``) over ``dataset``'s catalog."""
    kind = kind or cfg.engine.kind
    engines = engines or Engines(cfg, dataset)
    if kind.startswith("python:"):
        engine = engines.get(kind)
        original, expansion = [engine], engine
    elif kind not in PLAN_KINDS:
        raise ConfigError(f"[engine] kind must be one of {PLAN_KINDS} or python:MODULE:FACTORY, got {kind!r}")
    elif kind == "hybrid":
        original, expansion = [engines.get("dense"), engines.get("bm25")], engines.get("bm25")
    else:
        original, expansion = [engines.get(kind)], engines.get(kind)
    how = cfg.engine.fusion if kind == cfg.engine.kind else "rrf"
    return RetrievalPlan(kind, original, expansion, fusion_settings(cfg, kind), depth=cfg.engine.depth, how=how)


def build_speller(cfg: LeserConfig, dataset: Dataset, plan: RetrievalPlan) -> Speller | None:
    """The speller that fixes the query the expanders see (``[engine] correct_spelling``), or None."""
    return Speller.for_plan(dataset.product_texts, plan) if cfg.engine.correct_spelling else None


def build_reward(cfg: LeserConfig, dataset: Dataset | None = None, plan: RetrievalPlan | None = None) -> SearchReward:
    dataset = dataset or load_dataset(cfg.data.path)
    plan = plan or build_plan(cfg, dataset)
    judge = None
    if cfg.reward.relevance in JUDGED_MODES:
        from leser.judge import load_judge

        judge = load_judge(cfg)
    return SearchReward(dataset, plan, cfg.reward, cfg.rules, speller=build_speller(cfg, dataset, plan), judge=judge)
