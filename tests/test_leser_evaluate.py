"""``make eval`` end to end on a tiny generic data set, a tiny random BERT engine and a tiny random Llama."""
from __future__ import annotations

import json

import pytest

from conftest import build_tiny_llama
from leser.config import load_config
from leser.evaluate import run_evaluation
from test_retrieval_engine import CATALOG, save_tiny_bert

QUERIES = {"q1": "cordless drill", "q2": "white faucet", "q3": "blue sofa", "q4": "led bulb"}
QRELS = [("q1", "p0", 2), ("q1", "p8", 1), ("q2", "p6", 2), ("q3", "p7", 2), ("q3", "p1", 1), ("q4", "p9", 2)]


@pytest.fixture
def eval_overrides(tmp_path, tiny_tokenizer, monkeypatch) -> list[str]:
    monkeypatch.setenv("LESER_CACHE", str(tmp_path / "cache"))
    data = tmp_path / "data"
    data.mkdir()
    (data / "catalog.jsonl").write_text("".join(json.dumps({"id": f"p{i}", "text": t}) + "\n"
                                                for i, t in enumerate(CATALOG)))
    (data / "queries.jsonl").write_text("".join(json.dumps({"id": q, "text": t}) + "\n" for q, t in QUERIES.items()))
    (data / "qrels.tsv").write_text("".join(f"{q}\t{p}\t{g}\n" for q, p, g in QRELS))
    policy = tmp_path / "policy"
    build_tiny_llama(tiny_tokenizer).save_pretrained(policy)
    tiny_tokenizer.save_pretrained(policy)
    encoder = save_tiny_bert(tmp_path / "bert", seed=0)
    return [
        f'data.path="{data}"', f'engine.encoder="{encoder}"', f'policy.model="{policy}"',
        'eval.split="train"', "eval.max_queries=3", f'eval.output_dir="{tmp_path / "out"}"',
        "eval.max_new_tokens=6", f'eval.checkpoints=["again={policy}"]',
    ]


@pytest.fixture
def eval_config(eval_overrides):
    return load_config(None, eval_overrides)


def test_eval_writes_every_row_and_every_expansion(eval_config, tmp_path):
    pytest.importorskip("bm25s")
    report = run_evaluation(eval_config)
    rows = {r["system"]: r for r in report["rows"]}
    assert list(rows) == ["original query (dense)", "original query (BM25)", "pseudo-relevance feedback (no model)",
                          "zero-shot base model", "again"]
    n = report["num_queries"]
    assert 1 <= n <= 3
    assert rows["original query (dense)"]["metrics"]["coverage_increment"] == 0.0
    # the same weights, greedy: the same expansions and the same metrics
    assert rows["again"]["metrics"] == rows["zero-shot base model"]["metrics"]
    assert rows["again"]["generation"]["temperature"] == 0.0
    assert rows["again"]["generation"]["rrf_k"] == eval_config.reward.rrf_k
    # No model: one expansion per query, the query leading, the top result's words after it.
    for example in rows["pseudo-relevance feedback (no model)"]["examples"]:
        assert len(example["expansions"]) <= 1
        assert all(e.startswith(example["query"]) for e in example["expansions"])
    # Paired with the original query, query by query: the mean difference is the difference of the means.
    assert rows["original query (dense)"]["vs_original"] is None
    original = rows["original query (dense)"]["metrics"]
    for metric in ("ndcg@10", "recall@100"):
        paired = rows["again"]["vs_original"][metric]
        assert paired["mean"] == pytest.approx(rows["again"]["metrics"][metric] - original[metric])
        assert paired["ci_low"] <= paired["mean"] <= paired["ci_high"]
        assert paired["better"] + paired["worse"] + paired["same"] == n
    out = tmp_path / "out"
    assert json.loads((out / "report.json").read_text())["rows"][4]["system"] == "again"
    report_md = (out / "report.md").read_text()
    assert "| again |" in report_md
    assert "nDCG@10 - original [95% CI]" in report_md
    lines = [json.loads(line) for line in (out / "expansions.jsonl").read_text().splitlines()]
    assert len(lines) == 3 * n
    assert {line["system"] for line in lines} == {"pseudo-relevance feedback (no model)", "zero-shot base model", "again"}
    assert all(isinstance(line["expansions"], list) for line in lines)


def test_cli_distill_writes_a_policy_that_eval_can_load(eval_overrides, tmp_path, capsys):
    from leser.cli import main

    out = tmp_path / "distilled"
    sets = [*eval_overrides, f'distill.output_dir="{out}"', "distill.num_queries=4", "distill.num_samples=4",
            "distill.max_completion_length=6", "distill.min_reward=-10.0", "distill.epochs=1", "data.max_train_queries=4",
            "reward.original_weight=3.5"]
    args = ["distill"] + [x for s in sets for x in ("--set", s)]
    assert main(args) == 0, capsys.readouterr().err
    summary = json.loads((out / "distill.json").read_text())
    assert summary["queries"] == 4 and summary["kept"] >= 1
    assert summary["run_config"]["reward"]["original_weight"] == 3.5  # the reward that chose the picks is on record
    cfg = load_config(None, [*eval_overrides, f'eval.checkpoints=["distilled={out}"]', "eval.zero_shot=false"])
    report = run_evaluation(cfg)
    assert [r["system"] for r in report["rows"]][-1] == "distilled"
    assert main(args) == 2  # never overwrites
    assert "not empty" in capsys.readouterr().err


def test_report_png_is_written_when_matplotlib_is_installed(tmp_path):
    pytest.importorskip("matplotlib")
    from dataclasses import asdict

    from leser.evaluate import METRICS, Row, write_report

    row = Row("original query (dense)", dict.fromkeys(METRICS, 0.3))
    report = {"dataset": "toy", "split": "test", "num_queries": 1, "rows": [asdict(row)]}
    write_report(report, tmp_path)
    assert (tmp_path / "report.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_every_checkpoint_path_is_checked_before_any_work(tmp_path, monkeypatch):
    import leser.evaluate

    def must_not_run(*args, **kwargs):
        raise AssertionError("the data set was loaded before the checkpoint paths were checked")

    monkeypatch.setattr(leser.evaluate, "load_dataset", must_not_run)
    (tmp_path / "empty").mkdir()
    for item, problem in ((f"late={tmp_path / 'missing'}", "no such folder"),
                          (str(tmp_path / "empty"), "no config.json")):
        cfg = load_config(None, [f'eval.checkpoints=["{item}"]'])
        with pytest.raises(FileNotFoundError, match=rf"\[eval\] checkpoint .*{problem}"):
            run_evaluation(cfg)
