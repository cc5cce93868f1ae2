"""A checkpoint carries the [prompt], [rules], [reward] and [engine] it was trained with, and is served with them."""
from __future__ import annotations

import json

import pytest

from leser.cli import main
from test_leser_evaluate import eval_overrides  # noqa: F401  (the fixture: tiny data, encoder and policy)


@pytest.fixture
def trained(eval_overrides, tmp_path):  # noqa: F811
    """A one-step run trained with a non-default prompt (1 context title) and rules (3 words at most)."""
    sets = [*eval_overrides, f'train.output_dir="{tmp_path / "run"}"', "train.max_steps=1",
            "train.num_prompts_per_step=2", "train.num_generations=2", "train.max_completion_length=6",
            "train.eval_queries=1", "train.eval_samples_per_query=0", "prompt.context_k=1", "rules.max_words=3"]
    assert main(["train", *[x for s in sets for x in ("--set", s)]]) == 0
    return tmp_path / "run" / "checkpoint-1", [s for s in eval_overrides if not s.startswith("policy.model")]


def test_checkpoint_holds_its_settings(trained):
    checkpoint, _ = trained
    stored = json.loads((checkpoint / "leser_settings.json").read_text())
    assert set(stored) == {"prompt", "rules", "reward", "engine"}
    assert stored["prompt"]["context_k"] == 1 and stored["rules"]["max_words"] == 3


def test_expand_uses_the_checkpoint_settings_unless_told_otherwise(trained, capsys):
    checkpoint, sets = trained
    args = ["expand", "cordless drill", "--model", str(checkpoint), "--show-dropped",
            *[x for s in sets for x in ("--set", s)]]
    assert main(args) == 0
    out, err = capsys.readouterr()
    assert "trained with (leser_settings.json)" in err
    assert "context (1 results)" in out and "dropped by the platform rules" in out
    assert main([*args, "--set", "prompt.context_k=2"]) == 0  # --set wins over the stored value
    assert "context (2 results)" in capsys.readouterr().out


def test_precompute_writes_kept_and_dropped_expansions(trained, tmp_path):
    checkpoint, sets = trained
    queries = tmp_path / "head.txt"
    queries.write_text("cordless drill\nblue sofa\n")
    out = tmp_path / "head.jsonl"
    args = ["precompute", "--queries", str(queries), "--out", str(out), "--model", str(checkpoint), "--show-dropped",
            *[x for s in sets for x in ("--set", s)]]
    assert main(args) == 0
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert [line["query"] for line in lines] == ["cordless drill", "blue sofa"]
    for line in lines:
        assert all(len(e.split()) <= 3 for e in line["expansions"])  # the stored rules: 3 words at most
        assert all(d["violations"] for d in line["dropped"])
