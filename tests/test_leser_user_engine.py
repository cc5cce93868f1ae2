"""Bring your own engine: the example in experiments/examples trains and evaluates through the config alone."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from leser.cli import main
from leser.config import ConfigError, load_config
from test_leser_evaluate import eval_overrides  # noqa: F401  (the fixture: tiny data, encoder and policy)

EXAMPLES = Path(__file__).resolve().parents[1] / "experiments" / "examples"
USER_KIND = 'engine.kind="python:user_engine:make_engine"'


@pytest.fixture
def user_overrides(eval_overrides, monkeypatch, tmp_path):  # noqa: F811
    pytest.importorskip("bm25s")
    pytest.importorskip("Stemmer")
    monkeypatch.syspath_prepend(str(EXAMPLES))
    return [*eval_overrides, USER_KIND, 'eval.engines=["bm25"]', "eval.zero_shot=false",
            f'train.output_dir="{tmp_path / "run"}"', "train.max_steps=1", "train.num_prompts_per_step=2",
            "train.num_generations=2", "train.max_completion_length=6", "train.eval_queries=1",
            "train.eval_samples_per_query=0"]


def test_user_engine_trains_and_evaluates_from_the_config(user_overrides, tmp_path, capsys):
    args = [x for s in user_overrides for x in ("--set", s)]
    assert main(["train", *args]) == 0, capsys.readouterr().err
    assert "RetrievalPlan('python:user_engine:make_engine'" in capsys.readouterr().out
    assert (tmp_path / "run" / "checkpoint-1").is_dir()
    checkpoint = f'eval.checkpoints=["trained={tmp_path / "run" / "checkpoint-1"}"]'
    assert main(["eval", *args, "--set", checkpoint]) == 0, capsys.readouterr().err
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["engines"] == ["python:user_engine:make_engine", "bm25"]
    rows = {(r["system"], r["engine"]) for r in report["rows"]}
    assert ("trained", "python:user_engine:make_engine") in rows and ("trained", "bm25") in rows


def test_user_engine_errors_name_the_setting(eval_overrides, monkeypatch):  # noqa: F811
    from leser.runtime import build_plan
    from retrieval import load_dataset

    with pytest.raises(ConfigError, match="python:MODULE:FACTORY"):
        load_config(None, ['engine.kind="python:no_factory"'])
    cfg = load_config(None, [*eval_overrides, 'engine.kind="python:no_such_module:make"'])
    with pytest.raises(ConfigError, match="cannot import make from no_such_module"):
        build_plan(cfg, load_dataset(cfg.data.path))
    monkeypatch.syspath_prepend(str(EXAMPLES))
    cfg = load_config(None, [*eval_overrides, 'engine.kind="python:user_engine:__doc__"'])
    with pytest.raises(ConfigError, match="not callable"):
        build_plan(cfg, load_dataset(cfg.data.path))
    cfg = load_config(None, [*eval_overrides, 'engine.kind="python:builtins:str"'])  # str(dataset): no search
    with pytest.raises(ConfigError, match="no search"):
        build_plan(cfg, load_dataset(cfg.data.path))
