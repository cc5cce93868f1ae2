"""The app layer: TOML config loading, overrides, and clear errors from the command line."""
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
