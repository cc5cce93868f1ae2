"""The splits hold: ``make eval`` scores exactly the judged queries of the split it is asked for, and training
(the warm start, the headroom filter, every GRPO step) never sees a valid or test query; validation reads valid only."""
from __future__ import annotations

import json
from contextlib import contextmanager

import pytest

from leser.config import load_config
from leser.evaluate import run_evaluation
from retrieval.datasets.core import split_of
from splits import SPLIT_NAMES, split_dataset, write_split_folder
from test_retrieval_engine import save_tiny_bert


@pytest.fixture(scope="module")
def split_data(tmp_path_factory):
    """A generic folder with 3 usable queries (and one with nothing relevant) per split, and a tiny BERT."""
    root = tmp_path_factory.mktemp("splits")
    usable = write_split_folder(root / "data", per_split=3)
    return root, usable, save_tiny_bert(root / "bert", seed=0)


@pytest.mark.parametrize("split", SPLIT_NAMES)
def test_eval_scores_exactly_the_judged_queries_of_its_split(split, split_data, tmp_path, monkeypatch):
    root, usable, bert = split_data
    monkeypatch.setenv("LESER_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "out"
    cfg = load_config(None, [f'data.path="{root / "data"}"', f'engine.encoder="{bert}"', f'eval.split="{split}"',
                             'eval.engines=["dense"]', "eval.zero_shot=false", f'eval.output_dir="{out}"'])
    report = run_evaluation(cfg)
    assert len(usable[split]) == 3 and all(usable[s].isdisjoint(usable[split]) for s in SPLIT_NAMES if s != split)
    assert report["split"] == split and report["num_queries"] == 3
    lines = [json.loads(line) for line in (out / "expansions.jsonl").read_text().splitlines()]
    assert [line["system"] for line in lines] == ["pseudo-relevance feedback (no model)"] * 3
    # the split's queries with a relevant item, sorted by id; not its unjudged one, nor any other split's
    assert [line["query_id"] for line in lines] == sorted(usable[split])
    assert {split_of(line["query"]) for line in lines} == {split}


@contextmanager
def _phase(stack: list[str], name: str):
    stack.append(name)
    try:
        yield
    finally:
        stack.pop()


def test_labelled_training_sees_training_queries_only(tmp_path, monkeypatch, tiny_tokenizer):
    """``leser train`` with the labels reward, the headroom filter and the distilled warm start, spied on at the
    reward (query ids) and at the engine (query texts), each call tagged with the phase that made it."""
    import grpo.distill
    import leser.runtime
    from conftest import build_tiny_llama
    from grpo.trainer import GRPOTrainer
    from leser.cli import main
    from retrieval.plan import RetrievalPlan
    from reward import SearchReward

    dataset = split_dataset(per_split=4)
    monkeypatch.setattr(leser.runtime, "load_dataset", lambda path: dataset)
    monkeypatch.setenv("LESER_CACHE", str(tmp_path / "cache"))
    split_by_id = {q: split_of(t) for q, t in dataset.queries.items()}
    assert sorted(split_by_id.values()) == sorted(SPLIT_NAMES * 4)
    phase: list[str] = []
    seen: dict[str, set[str]] = {}  # phase -> splits of the queries the reward or the engine saw in it

    def record(splits):
        seen.setdefault(phase[-1] if phase else "setup", set()).update(splits)

    def in_phase(name, fn):
        def wrapped(*args, **kwargs):
            with _phase(phase, name):
                return fn(*args, **kwargs)
        return wrapped

    distill, with_headroom = grpo.distill.distill, SearchReward.with_headroom
    rollout, validation = GRPOTrainer.rollout, GRPOTrainer.validation_reward
    score, original_results, search_original = (SearchReward.score, SearchReward.original_results,
                                                RetrievalPlan.search_original)
    headroom_in: list[str] = []
    monkeypatch.setattr(grpo.distill, "distill", in_phase("distill", distill))
    monkeypatch.setattr(SearchReward, "with_headroom",
                        in_phase("headroom", lambda self, qids: headroom_in.extend(qids) or with_headroom(self, qids)))
    monkeypatch.setattr(GRPOTrainer, "rollout", in_phase("step", rollout))
    monkeypatch.setattr(GRPOTrainer, "validation_reward", in_phase("validation", validation))
    monkeypatch.setattr(SearchReward, "score",
                        lambda self, qids, e: record(split_by_id[q] for q in qids) or score(self, qids, e))
    monkeypatch.setattr(SearchReward, "original_results",
                        lambda self, qids: record(split_by_id[q] for q in qids) or original_results(self, qids))
    monkeypatch.setattr(RetrievalPlan, "search_original",
                        lambda self, texts: record(split_of(t) for t in texts) or search_original(self, texts))

    policy = tmp_path / "policy"
    build_tiny_llama(tiny_tokenizer).save_pretrained(policy)
    tiny_tokenizer.save_pretrained(policy)
    settings = [f'policy.model="{policy}"', f'engine.encoder="{save_tiny_bert(tmp_path / "bert", seed=0)}"',
                'reward.relevance="labels"', "reward.headroom_only=true",
                "distill.before_train=true", f'distill.output_dir="{tmp_path / "distill"}"', "distill.num_queries=8",
                "distill.num_samples=2", "distill.max_completion_length=6", "distill.min_reward=-10.0",
                "distill.epochs=1", 'distill.precision="fp32"',
                f'train.output_dir="{tmp_path / "run"}"', "train.max_steps=2", "train.num_prompts_per_step=2",
                "train.num_generations=2", "train.max_completion_length=6", "train.eval_queries=2",
                "train.save_steps=10", 'train.precision="fp32"']
    assert main(["train", *[a for s in settings for a in ("--set", s)]]) == 0
    assert (tmp_path / "distill" / "distill.json").is_file()
    # the headroom filter was handed the training split, all of it, and nothing else
    assert sorted(headroom_in) == sorted(dataset.split("train"))
    assert set(seen) == {"headroom", "distill", "step", "validation"}, seen
    for name in ("headroom", "distill", "step"):
        assert seen[name] == {"train"}, (name, seen)
    assert seen["validation"] == {"valid"}


@pytest.mark.parametrize("relevance", ["labels", "mixed", "judge", "label_free"])
def test_a_split_keeps_queries_without_a_relevant_item_only_where_the_reward_reads_no_labels(relevance):
    """The labels (and the labels half of "mixed") can teach nothing on a query with no relevant item; the judge
    and the label-free reward read no labels, so they keep it. Sorted ids, the split's own only."""
    from leser.queries import trainable_queries

    dataset = split_dataset()
    dataset.qrels["train1"] = {0: 1.0}  # judged, below the relevant gain
    got = trainable_queries(load_config(None, [f'reward.relevance="{relevance}"']), dataset, "train")
    want = ["train0", "train2"] if relevance in ("labels", "mixed") else ["train0", "train1", "train2"]
    assert got == want
