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


def test_eval_scores_every_row_on_every_engine(eval_overrides, tmp_path, monkeypatch):
    """Every row on every engine; the "again" checkpoint is a copy of the policy whose expander writes the
    pseudo-relevance lines, so its row must score exactly as the PRF row, through the model rows' own path."""
    import shutil

    import policy
    from retrieval import title_expansions

    pytest.importorskip("bm25s")
    pytest.importorskip("Stemmer")
    base = next(s for s in eval_overrides if s.startswith("policy.model=")).split("=", 1)[1].strip('"')
    again = tmp_path / "again"
    shutil.copytree(base, again)
    expand = policy.expand_queries

    def prf_for_again(model, tokenizer, queries, contexts, prompt_cfg, **kw):
        if model.name_or_path != str(again):
            return expand(model, tokenizer, queries, contexts, prompt_cfg, **kw)
        return [title_expansions(q, c[:prompt_cfg.num_expansions], eval_config.rules.max_words,
                                 eval_config.rules.max_chars) for q, c in zip(queries, contexts)]

    monkeypatch.setattr(policy, "expand_queries", prf_for_again)
    # one query a batch: a batch put back in the wrong place would give a query another's expansions
    eval_config = load_config(None, [*eval_overrides, f'eval.checkpoints=["again={again}"]', "eval.batch_queries=1"])
    report = run_evaluation(eval_config)
    systems = ["original query", "pseudo-relevance feedback (no model)", "zero-shot base model", "again"]
    assert report["engines"] == ["dense", "bm25", "hybrid"]
    assert report["commit"] and report["config"]["engine"]["kind"] == "dense"
    rows = {(r["system"], r["engine"]): r for r in report["rows"]}
    assert set(rows) == {(s, e) for s in systems for e in report["engines"]}
    n = report["num_queries"]
    assert 1 <= n <= 3
    for engine in report["engines"]:
        original = rows["original query", engine]
        assert original["metrics"]["coverage_increment"] == 0.0 and original["vs_original"] is None
        assert rows["again", engine]["generation"]["plan"]["kind"] == engine
        # Paired with this engine's original query, and with pseudo-relevance: mean of differences.
        prf = rows["pseudo-relevance feedback (no model)", engine]
        # the PRF lines written by a "model": the PRF row's numbers, no difference on any query
        assert rows["again", engine]["metrics"] == prf["metrics"]
        assert rows["again", engine]["vs_original"] == prf["vs_original"]
        assert rows["again", engine]["rule_violation_rate"] == prf["rule_violation_rate"]
        for metric in ("ndcg@10", "recall@100"):
            assert rows["again", engine]["vs_pseudo_relevance"][metric] == {
                "mean": 0.0, "ci_low": 0.0, "ci_high": 0.0, "better": 0, "worse": 0, "same": n}
        assert prf["vs_pseudo_relevance"] is None
        for metric in ("ndcg@10", "recall@100"):
            paired = rows["again", engine]["vs_original"][metric]
            assert paired["mean"] == pytest.approx(rows["again", engine]["metrics"][metric] - original["metrics"][metric])
            assert paired["ci_low"] <= paired["mean"] <= paired["ci_high"]
            assert paired["better"] + paired["worse"] + paired["same"] == n
            vs_prf = rows["again", engine]["vs_pseudo_relevance"][metric]
            assert vs_prf["mean"] == pytest.approx(rows["again", engine]["metrics"][metric] - prf["metrics"][metric])
    # The dense plan's fusion follows [engine]; the others keep their defaults.
    assert rows["again", "dense"]["generation"]["plan"]["rrf_k"] == 10
    assert rows["again", "hybrid"]["generation"]["plan"]["expansion_weight"] == 0.5
    # No model: as many lines as the policy (num_expansions, default 3), the query leading, a title's words after it.
    for example in rows["pseudo-relevance feedback (no model)", "dense"]["examples"]:
        assert 1 <= len(example["expansions"]) <= eval_config.prompt.num_expansions
        assert all(e.startswith(example["query"]) for e in example["expansions"])
    out = tmp_path / "out"
    assert json.loads((out / "report.json").read_text())["rows"][-1]["system"] == "again"
    report_md = (out / "report.md").read_text()
    assert "## Engine: bm25" in report_md and "| again |" in report_md
    assert "Against pseudo-relevance on hybrid" in report_md
    lines = [json.loads(line) for line in (out / "expansions.jsonl").read_text().splitlines()]
    assert len(lines) == 3 * n
    assert {line["system"] for line in lines} == {"pseudo-relevance feedback (no model)", "zero-shot base model", "again"}
    assert all(isinstance(line["expansions"], list) for line in lines)
    by_system = {}
    for line in lines:
        by_system.setdefault(line["system"], {})[line["query_id"]] = line["expansions"]
    assert by_system["again"] == by_system["pseudo-relevance feedback (no model)"]
    assert any(by_system["again"].values())  # lines to fuse, so a misplaced one would move a metric


def test_cli_distill_writes_a_policy_that_eval_can_load(eval_overrides, tmp_path, capsys):
    from leser.cli import main

    out = tmp_path / "distilled"
    sets = [*eval_overrides, f'distill.output_dir="{out}"', "distill.num_queries=4", "distill.num_samples=4",
            "distill.max_completion_length=6", "distill.min_reward=-10.0", "distill.epochs=1", "data.max_train_queries=4",
            "engine.original_weight=3.5"]
    args = ["distill"] + [x for s in sets for x in ("--set", s)]
    assert main(args) == 0, capsys.readouterr().err
    summary = json.loads((out / "distill.json").read_text())
    assert summary["queries"] == 4 and summary["kept"] >= 1
    assert summary["run_config"]["engine"]["original_weight"] == 3.5  # the reward that chose the picks is on record
    cfg = load_config(None, [*eval_overrides, f'eval.checkpoints=["distilled={out}"]', "eval.zero_shot=false"])
    report = run_evaluation(cfg)
    assert [r["system"] for r in report["rows"]][-1] == "distilled"
    assert main(args) == 2  # never overwrites
    assert "not empty" in capsys.readouterr().err


def test_report_png_is_written_when_matplotlib_is_installed(tmp_path):
    pytest.importorskip("matplotlib")
    from dataclasses import asdict

    from leser.evaluate import write_report
    from leser.scoring import METRICS, Row

    from retrieval.metrics import paired_bootstrap

    original = Row("original query", "dense", dict.fromkeys(METRICS, 0.3))
    trained = Row("trained", "dense", dict.fromkeys(METRICS, 0.302),
                  vs_original={m: paired_bootstrap([0.002, 0.001, 0.003]) for m in ("ndcg@10", "recall@100")})
    report = {"dataset": "toy", "split": "test", "num_queries": 3, "engines": ["dense"],
              "context_plan": {"kind": "dense"}, "rows": [asdict(original), asdict(trained)]}
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



def test_eval_shows_a_checkpoint_the_context_it_was_trained_with(eval_overrides, tmp_path, monkeypatch):
    """A policy trained on 4 titles is given 4 by make eval although the config says 1; its prompt cuts them."""
    import shutil

    import leser.evaluate as evaluate

    policy = next(s for s in eval_overrides if s.startswith("policy.model=")).split("=", 1)[1].strip('"')
    wide = tmp_path / "wide"
    shutil.copytree(policy, wide)
    (wide / "leser_settings.json").write_text(json.dumps({"prompt": {"context_k": 4}}))
    shown = {}

    def record(path, cfg, queries, contexts, shown_queries=None, num_samples=0):
        shown[path] = {len(c) for c in contexts}
        return evaluate.Expansions([[] for _ in queries], [[] for _ in queries], 0.0, {})

    monkeypatch.setattr(evaluate, "generate_expansions", record)
    cfg = load_config(None, [*eval_overrides, "prompt.context_k=1", f'eval.checkpoints=["wide={wide}"]',
                             'eval.engines=["dense"]'])
    run_evaluation(cfg)
    assert shown == {policy: {4}, str(wide): {4}}  # the zero-shot row and the checkpoint get the same titles


def test_context_depth_reaches_the_deepest_prompt_of_any_checkpoint(tmp_path):
    from leser.evaluate import context_depth

    wide, plain = tmp_path / "wide", tmp_path / "plain"
    wide.mkdir(), plain.mkdir()
    (wide / "leser_settings.json").write_text(json.dumps({"prompt": {"context_k": 7}}))
    cfg = load_config(None, ["prompt.context_k=2"])
    assert context_depth(cfg, [str(wide), str(plain)]) == 7  # trained on 7 titles, shown 7 where the config says 2
    assert context_depth(cfg, [str(plain), ""]) == 2


def test_eval_with_correct_spelling_shows_the_expanders_the_fixed_query(eval_overrides, tmp_path, monkeypatch):
    """[engine] correct_spelling: the policy and PRF see the query with its typo fixed; the engine, the rules and
    expansions.jsonl keep the query as typed."""
    import leser.evaluate as evaluate
    from retrieval import split_of

    typo = "cordles drill"  # the catalogue says "cordless"
    data = next(s for s in eval_overrides if s.startswith("data.path=")).split("=", 1)[1].strip('"')
    queries = {**QUERIES, "q1": typo}
    (tmp_path / "data" / "queries.jsonl").write_text("".join(json.dumps({"id": q, "text": t}) + "\n"
                                                        for q, t in queries.items()))
    assert str(tmp_path / "data") == data
    seen = {}

    def record(path, cfg, queries, contexts, shown_queries=None, num_samples=0):
        seen[path] = dict(zip(queries, shown_queries))
        return evaluate.Expansions([[s] for s in shown_queries], [[] for _ in queries], 0.0, {})

    monkeypatch.setattr(evaluate, "generate_expansions", record)
    overrides = [*eval_overrides, f'eval.split="{split_of(typo)}"', 'eval.engines=["dense"]', "eval.zero_shot=false"]
    run_evaluation(load_config(None, [*overrides, "engine.correct_spelling=true"]))
    [policy_seen] = seen.values()
    assert policy_seen[typo] == "cordless drill"
    lines = [json.loads(line) for line in (tmp_path / "out" / "expansions.jsonl").read_text().splitlines()]
    prf = next(r for r in lines if r["query"] == typo and r["system"].startswith("pseudo"))
    assert prf["expansions"][0].startswith("cordless drill")  # PRF is written on the fixed query too
    policy_row = next(r for r in lines if r["query"] == typo and r["system"] == "again")
    assert policy_row["expansions"] == ["cordless drill"]  # not "equals_query": the rules read the typed query
    seen.clear()
    run_evaluation(load_config(None, overrides))  # off (the default): every expander sees the query as typed
    assert next(iter(seen.values()))[typo] == typo


def test_the_prf_row_writes_as_many_lines_as_the_policy():
    """The no-model row's budget is the policy's: one line per top title, ``[prompt] num_expansions`` of them."""
    from leser.evaluate import pseudo_relevance_expansions

    titles = ["cordless drill kit with battery", "dewalt cordless drill", "impact driver drill set", "drill bits"]
    for n in (1, 2, 3):
        out = pseudo_relevance_expansions(load_config(None, [f"prompt.num_expansions={n}"]), ["drill"], [titles])
        assert out.expansions == [["drill cordless kit with battery", "drill dewalt cordless",
                                   "drill impact driver set"][:n]]
        assert out.generation["lines"] == n
    # within the platform's limit on lines, and as asked for the one-line row
    capped = load_config(None, ["prompt.num_expansions=3", "rules.max_expansions=2"])
    assert len(pseudo_relevance_expansions(capped, ["drill"], [titles]).expansions[0]) == 2
    assert len(pseudo_relevance_expansions(capped, ["drill"], [titles], lines=1).expansions[0]) == 1


def test_judge_choice_rows_take_their_lines_from_the_policys_own_lines_and_the_shown_titles(eval_overrides,
                                                                                            tmp_path, monkeypatch):
    """``[eval] judge_choice_samples``: a trained row gets a second row whose lines the judge reward picks among
    the row's greedy lines and its samples; the PRF row gets one picked among its lines of every shown title (the
    same budget); the zero-shot row gets none, and the engine scores the chosen lines."""
    import leser.evaluate
    from test_reward_judge import save_tiny_cross_encoder

    seen = []
    choose = leser.evaluate.greedy_lines

    def spy(reward, qids, pools, most):
        chosen = choose(reward, qids, pools, most)
        seen.append((reward.cfg.relevance, list(qids), pools, chosen, most))
        return chosen

    monkeypatch.setattr(leser.evaluate, "greedy_lines", spy)
    judge = save_tiny_cross_encoder(tmp_path / "judge")
    cfg = load_config(None, [*eval_overrides, f'judge.model="{judge}"', 'judge.precision="fp32"',
                             "eval.judge_choice_samples=3", 'eval.engines=["dense"]', "prompt.num_expansions=2"])
    report = run_evaluation(cfg)
    prf = "pseudo-relevance feedback (no model)"
    prf_label = f"pseudo-relevance, judge's choice of the top {cfg.prompt.context_k} titles' lines"
    label = "again + judge's choice of 3 samples"
    assert [r["system"] for r in report["rows"]] == ["original query", prf, prf_label,
                                                     "zero-shot base model", "again", label]
    assert len(seen) == 2  # the PRF row and the trained row only
    lines = [json.loads(line) for line in (tmp_path / "out" / "expansions.jsonl").read_text().splitlines()]
    by_system = {}
    for r in lines:
        by_system.setdefault(r["system"], {})[r["query_id"]] = r["expansions"]
    pooled = {r["system"]: {} for r in lines if "pool" in r}
    for r in lines:
        if "pool" in r:
            pooled[r["system"]][r["query_id"]] = r["pool"]
    assert set(pooled) == {prf_label, label}  # only the judge-chosen rows record what they chose from
    for (relevance, qids, pools, chosen, most), system in zip(seen, (prf_label, label)):
        assert relevance == "judge" and most == 2 and list(pooled[system].values()) == pools
        assert list(by_system[system]) == qids and list(by_system[system].values()) == chosen
        for pool, picked in zip(pools, chosen):
            assert set(picked) <= set(pool) and len(picked) <= most and len(pool) == len(set(pool))
    assert max(map(len, seen[0][2])) > 2  # more lines than the PRF row's budget to choose among
    for qid, pool in zip(seen[0][1], seen[0][2]):
        assert by_system[prf][qid] == pool[:2]  # the PRF row's own lines come first in its pool
    for qid, pool in zip(seen[1][1], seen[1][2]):
        assert set(by_system["again"][qid]) <= set(pool)
    row = report["rows"][-1]
    assert row["generation"]["pool"].startswith("distinct lines of the greedy completion and 3 samples")
    assert row["generation"]["chosen_by"].startswith("relevance judge")
    assert row["vs_pseudo_relevance"] is not None and row["latency_ms_per_query"] > 0
    assert report["rows"][2]["vs_pseudo_relevance"] is not None
