"""The app layer: TOML config loading, overrides, and clear errors from the command line."""
import re
from pathlib import Path

import pytest

from leser.cli import main
from leser.config import ConfigError, load_config, to_toml

CONFIGS = sorted((Path(__file__).parents[1] / "experiments" / "configs").glob("*.toml"))


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_shipped_configs_load(path):
    cfg = load_config(path)
    assert cfg.train.num_generations >= 2


def test_overrides_use_toml_syntax(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text('[train]\nmax_steps = 3\n[lora]\ntarget_modules = ["q_proj"]\n')
    cfg = load_config(path, ["train.beta=0.0", "data.path=some/dir", "engine.original_weight=3"])
    assert cfg.train.max_steps == 3 and cfg.train.beta == 0.0
    assert cfg.data.path == "some/dir"
    assert cfg.engine.original_weight == 3
    assert cfg.lora.target_modules == ("q_proj",)


@pytest.mark.parametrize(
    "text, message",
    [
        ("[trian]\nmax_steps = 3\n", "unknown table"),
        ("[train]\nmax_stepz = 3\n", "unknown key"),
        ("[train]\nloss_type = 'ppo'\n", "loss_type"),
        ("[train\n", "invalid TOML"),
        ("train = 3\n", "must be a table"),
    ],
)
def test_bad_config_names_the_problem(tmp_path, text, message):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_config(path)


def test_missing_config_file():
    with pytest.raises(ConfigError, match="not found"):
        load_config("nope.toml")


def test_cli_reports_errors_without_traceback(capsys, tmp_path):
    assert main(["config", "--config", str(tmp_path / "missing.toml")]) == 2
    assert "config file not found" in capsys.readouterr().err
    assert main(["expand", "   "]) == 2
    assert "empty query" in capsys.readouterr().err
    empty = tmp_path / "q.txt"
    empty.write_text("\n\n")
    assert main(["precompute", "--queries", str(empty), "--out", str(tmp_path / "o.jsonl")]) == 2
    assert "no queries" in capsys.readouterr().err
    assert main(["precompute", "--queries", str(tmp_path / "none.txt"), "--out", str(tmp_path / "o.jsonl")]) == 2
    assert "cannot read" in capsys.readouterr().err


def test_cli_config_prints_resolved_values(capsys):
    assert main(["config", "--set", "train.max_steps=7"]) == 0
    assert "\nmax_steps = 7\n" in capsys.readouterr().out


@pytest.mark.parametrize("path", [None, *CONFIGS], ids=lambda p: getattr(p, "name", "defaults"))
def test_cli_config_prints_toml_that_reads_back_identically(path, tmp_path, capsys):
    overrides = ["train.learning_rate=3.3e-06", "reward.deep_weight=0.1", "engine.rrf_k=7", """data.path='a "b" é'""",
                 "rules.banned_terms=['x', \"it's\"]", "lora.target_modules=['q_proj']", "train.use_lora=true"]
    cfg = load_config(path, overrides)
    args = ["config", *(["--config", str(path)] if path else []), *[x for o in overrides for x in ("--set", o)]]
    assert main(args) == 0
    printed = tmp_path / "printed.toml"
    printed.write_text(capsys.readouterr().out, encoding="utf-8")
    again = load_config(printed)
    assert again.to_dict() == cfg.to_dict()
    assert to_toml(again) == printed.read_text(encoding="utf-8")  # types too: 1.0 stays a float
    assert again.lora.target_modules == ("q_proj",) and again.data.path == 'a "b" é'


def test_cli_merge_writes_a_plain_model(tmp_path, tiny_tokenizer, capsys):
    import torch
    from transformers import AutoModelForCausalLM

    from conftest import build_tiny_llama
    from policy import LoraConfig, apply_lora, save_adapter

    base = build_tiny_llama(tiny_tokenizer)
    base.save_pretrained(tmp_path / "base")
    tiny_tokenizer.save_pretrained(tmp_path / "base")
    cfg = LoraConfig(r=2, alpha=4)
    apply_lora(base, cfg)
    for p in base.parameters():
        if p.requires_grad:
            torch.nn.init.normal_(p, std=0.1)  # a non-trivial adapter
    adapter = save_adapter(base, tmp_path / "adapter.safetensors", cfg)
    args = ["merge", "--adapter", str(adapter), "--model", str(tmp_path / "base"), "--output", str(tmp_path / "out")]
    assert main(args) == 0
    merged = AutoModelForCausalLM.from_pretrained(tmp_path / "out")
    ids = torch.tensor([[1, 5, 9, 12]])
    with torch.no_grad():
        torch.testing.assert_close(merged(ids).logits, base(ids).logits, atol=1e-5, rtol=0)
    # never overwrite a model, and a missing adapter is a one-line error
    assert main(args) == 2
    assert "not empty" in capsys.readouterr().err
    assert main(["merge", "--adapter", str(tmp_path / "none"), "--output", str(tmp_path / "o2")]) == 2


@pytest.mark.parametrize(
    "override, message",
    [
        ("train.epsilon=-0.1", r"epsilon must be a number >= 0, got -0.1"),
        ("train.max_grad_norm=-1", r"max_grad_norm must be > 0"),
        ("train.save_total_limit=-1", r"save_total_limit must be an integer >= 1, got -1"),
        ("train.eval_queries=-1", r"eval_queries must be an integer >= 0"),
        ("train.max_steps=2.5", r"max_steps must be an integer, got 2.5"),
        ('train.learning_rate="abc"', r"learning_rate must be a finite number, got 'abc'"),
        ('train.beta="abc"', r"beta must be a finite number, got 'abc'"),
        ("train.learning_rate=nan", r"learning_rate must be a finite number, got nan"),
        ("engine.original_weight=inf", r"original_weight must be a finite number"),
        ("train.use_lora=1", r"use_lora must be true or false"),
        ("lora.target_modules=[1]", r"target_modules must be a list of strings"),
        ("train.max_step=5", r"unknown key 'max_step'; did you mean 'max_steps'\?"),
        ("trian.max_steps=5", r"unknown table \[trian\]; did you mean 'train'\?"),
    ],
)
def test_bad_override_names_key_rule_and_the_set_not_the_file(tmp_path, override, message):
    path = tmp_path / "c.toml"
    path.write_text("[train]\nmax_steps = 3\n")
    with pytest.raises(ConfigError, match=rf"^--set {re.escape(override)}: .*{message}"):
        load_config(path, [override])


def test_bad_value_in_the_file_blames_the_file(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text("[train]\nepsilon = -1\nmax_stepz = 3\n")
    with pytest.raises(ConfigError, match=rf"^{re.escape(str(path))}: \[train\] unknown key 'max_stepz'; did you mean"):
        load_config(path)
    path.write_text("[train]\nepsilon = -1\n")
    with pytest.raises(ConfigError, match=rf"^{re.escape(str(path))}: \[train\] epsilon must be a number >= 0"):
        load_config(path, ["train.beta=0.1"])


def test_grpo_config_checks_ranges_in_python_too():
    from grpo.config import GRPOConfig

    for bad in (dict(epsilon=-1), dict(max_grad_norm=0), dict(save_total_limit=0), dict(max_steps=2.5),
                dict(beta="abc"), dict(min_lr_ratio=2), dict(max_nonfinite_steps=0)):
        with pytest.raises(ValueError, match=next(iter(bad))):
            GRPOConfig(**bad)


def test_a_missing_policy_is_reported_before_the_catalog_is_embedded(tmp_path, monkeypatch, capsys):
    import leser.runtime
    import policy.loading

    def must_not_run(*args, **kwargs):
        raise AssertionError("the catalog was embedded before the policy path was checked")

    monkeypatch.setattr(leser.runtime, "build_reward", must_not_run)
    monkeypatch.setattr(policy.loading, "_hub_reachable", lambda: False)
    monkeypatch.chdir(tmp_path)
    for command in ("train", "distill"):
        argv = [command, "--set", 'policy.model="runs/cpu_distill"', "--set", 'train.output_dir="out"']
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "runs/cpu_distill" in err, err
