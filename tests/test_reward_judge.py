"""The relevance judge: its scores against a brute-force forward pass, its reward on a toy catalog, its metrics
by hand, and that only training-split queries ever reach its training."""
from __future__ import annotations

import json
import math

import pytest
import torch

from retrieval import Dataset
from retrieval.datasets.core import split_of
from retrieval.plan import FusionSettings, RetrievalPlan
from reward import RewardConfig, RulesConfig, SearchReward
from reward.relevance_judge import RelevanceJudge
from reward.judge_train import JudgeConfig, judged_item_metrics, training_pairs
from splits import split_dataset
from test_retrieval_engine import CATALOG
from test_reward import FakeEngine


def save_tiny_cross_encoder(folder, seed: int = 0):
    """A 2-layer random BERT with a one-logit head and a word-level tokenizer over CATALOG's words."""
    from transformers import BertConfig, BertForSequenceClassification, BertTokenizer

    words = sorted({w for text in CATALOG for w in text.split()})
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *words]
    BertTokenizer(vocab={word: i for i, word in enumerate(vocab)}).save_pretrained(folder)
    torch.manual_seed(seed)
    config = BertConfig(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=64, num_labels=1,
                        initializer_range=0.5)  # wide weights, so that pairs score visibly apart
    BertForSequenceClassification(config).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def judge_folder(tmp_path_factory):
    return save_tiny_cross_encoder(tmp_path_factory.mktemp("judge"))


def test_judge_scores_equal_one_pair_at_a_time_forward_passes(judge_folder):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    judge = RelevanceJudge(str(judge_folder), device="cpu", batch_size=3)
    queries = ["cordless drill", "blue sofa", "led bulb", "white kitchen faucet pull down", "drill"]
    titles = [CATALOG[0], CATALOG[1], CATALOG[2], CATALOG[3], CATALOG[1]]
    got = judge.score(queries, titles)
    tokenizer = AutoTokenizer.from_pretrained(judge_folder)
    model = AutoModelForSequenceClassification.from_pretrained(judge_folder).eval()
    with torch.no_grad():
        want = [torch.sigmoid(model(**tokenizer(q, t, return_tensors="pt")).logits[0, 0]).item()
                for q, t in zip(queries, titles)]
    # padded, length-sorted batches of 3 give each pair's unpadded score, in the input's order
    assert got.tolist() == pytest.approx(want, abs=1e-5)
    assert len(set(round(x, 4) for x in want)) > 1  # the pairs differ, so an order mix-up would show


def test_judge_caches_rows_and_scores_no_result_as_zero(judge_folder):
    judge = RelevanceJudge(str(judge_folder), device="cpu")
    first = judge.rows("cordless drill", [0, 2, -1, 0], CATALOG)
    assert judge.pairs_scored == 2  # rows 0 and 2 once each; -1 is no product
    assert first[2].item() == 0.0 and first[0].item() == first[3].item()
    again = judge.score_many(["cordless drill", "blue sofa"], [[2, 0], [0]], CATALOG)
    assert judge.pairs_scored == 3  # only ("blue sofa", 0) was new
    assert again[0].tolist() == [first[1].item(), first[0].item()]


def test_judge_refuses_a_folder_without_a_model(tmp_path):
    with pytest.raises(FileNotFoundError, match="no config.json"):
        RelevanceJudge(str(tmp_path))


class TableJudge:
    """A judge that knows each product's relevance by catalog row (any query)."""

    def __init__(self, by_row: dict[int, float]):
        self.by_row = by_row

    def score_many(self, queries, rows, product_texts):
        return [torch.tensor([self.by_row.get(r, 0.0) if r >= 0 else 0.0 for r in rs]) for rs in rows]


def judged_env(relevance: str, by_row: dict[int, float]):
    dataset = Dataset(name="toy", product_ids=[f"p{i}" for i in range(6)],
                      product_texts=[f"title {i}" for i in range(6)], queries={"q": "drill"},
                      qrels={"q": {0: 2.0, 1: 0.0}}, relevant_gain=2.0)
    engine = FakeEngine({"drill": [0, 1, 2], "impact driver": [4, 5], "hammer": [5]})
    cfg = RewardConfig(relevance=relevance, relevance_on="fused", relevance_k=2, coverage_k=3, deep_weight=1.0)
    plan = RetrievalPlan("fake", [engine], engine, FusionSettings(1.0, 1.0, rrf_k=60), depth=3)
    return SearchReward(dataset, plan, cfg, RulesConfig(), judge=TableJudge(by_row))


def test_an_unjudged_relevant_product_raises_the_judge_coverage_not_the_labels_one():
    # Row 4 is relevant by the judge and judged by nobody; the expansion brings it into the top 3.
    by_row = {0: 1.0, 1: 0.0, 2: 0.0, 4: 1.0, 5: 0.0}
    # fused (RRF k 60, equal weights): original [0, 1, 2] and [4, 5] -> [0, 4, 1] (ties keep list order)
    labels = judged_env("labels", by_row).score(["q"], [["impact driver"]])
    judged = judged_env("judge", by_row).score(["q"], [["impact driver"]])
    assert labels.coverage.item() == 0.0  # the labels know row 0 only, which both lists hold
    # judged mass in the top 3: fused {0, 4, 1} = 2, original {0, 1, 2} = 1: (2 - 1) / max(1, 1) = 1
    assert judged.coverage.item() == pytest.approx(1.0)
    # DCG@2: fused [0, 4] = 1 + 1/log2(3), original [0, 1] = 1; ideal of the original's own [1, 0] = 1
    assert judged.relevance.item() == pytest.approx(1 / math.log2(3), abs=1e-6)
    # DCG@3: fused 1 + 1/log2(3) + 0, original 1: the same gain over the same ideal
    assert judged.deep.item() == pytest.approx(1 / math.log2(3), abs=1e-6)
    # an expansion that brings only what the judge calls irrelevant cannot gain
    assert judged_env("judge", by_row).score(["q"], [["hammer"]]).coverage.item() <= 0.0


def test_mixed_relevance_is_the_mean_of_the_labels_and_judge_parts():
    by_row = {0: 1.0, 4: 1.0}
    parts = {m: judged_env(m, by_row).score(["q"], [["impact driver"]]) for m in ("labels", "judge", "mixed")}
    for name in ("relevance", "coverage", "deep"):
        want = (getattr(parts["labels"], name).item() + getattr(parts["judge"], name).item()) / 2
        assert getattr(parts["mixed"], name).item() == pytest.approx(want, abs=1e-6)


def test_judge_modes_refuse_a_missing_judge_and_the_labels_headroom_filter():
    env = judged_env("labels", {})
    with pytest.raises(ValueError, match="needs a relevance judge"):
        SearchReward(env.dataset, env.plan, RewardConfig(relevance="judge", relevance_on="fused"), RulesConfig())
    with pytest.raises(ValueError, match="needs reward.relevance_on = 'fused'"):
        SearchReward(env.dataset, env.plan, RewardConfig(relevance="judge", relevance_on="each"), RulesConfig(),
                     judge=TableJudge({}))
    with pytest.raises(ValueError, match="^reward.headroom_only reads the labels; with reward.relevance = 'judge'"):
        SearchReward(env.dataset, env.plan, RewardConfig(relevance="judge", relevance_on="fused", headroom_only=True),
                     RulesConfig(), judge=TableJudge({}))


def test_judge_parts_by_hand_at_each_cut_off():
    """relevance_k 1, coverage_k 2, depth 3, and an ideal DCG and an original mass that are not 1, so each cut-off,
    each divisor and each part's place in the tuple shows."""
    dataset = Dataset(name="toy", product_ids=[f"p{i}" for i in range(6)],
                      product_texts=[f"title {i}" for i in range(6)], queries={"q": "drill"}, qrels={"q": {0: 2.0}},
                      relevant_gain=2.0)
    engine = FakeEngine({"drill": [0, 1, 2], "impact driver": [4, 5]})
    cfg = RewardConfig(relevance="judge", relevance_on="fused", relevance_k=1, coverage_k=2, deep_weight=1.0)
    # expansions weigh 2: fused [4, 5, 0] (2/61, 2/62, then 1/61)
    plan = RetrievalPlan("fake", [engine], engine, FusionSettings(1.0, 2.0, rrf_k=60), depth=3)
    judge = TableJudge({0: 0.75, 1: 0.5, 2: 0.8, 4: 1.0, 5: 1.0})
    parts = SearchReward(dataset, plan, cfg, RulesConfig(), judge=judge).score(["q"], [["impact driver"]])
    before, after, ideal = [0.75, 0.5, 0.8], [1.0, 1.0, 0.75], [0.8, 0.75, 0.5]

    def dcg(gains, k):
        return sum(g / math.log2(i + 2) for i, g in enumerate(gains[:k]))

    assert parts.relevance.item() == pytest.approx((1.0 - 0.75) / 0.8, abs=1e-6)  # DCG@1 over the ideal's
    assert parts.deep.item() == pytest.approx((dcg(after, 3) - dcg(before, 3)) / dcg(ideal, 3), abs=1e-6)
    assert parts.coverage.item() == pytest.approx((2.0 - 1.25) / 1.25, abs=1e-6)  # top-2 mass over the original's


def test_judged_item_metrics_by_hand():
    dataset = Dataset(name="toy", product_ids=list("abcd"), product_texts=list("abcd"), queries={"q": "x"},
                      qrels={"q": {0: 2.0, 1: 1.0, 2: 0.0}}, relevant_gain=2.0)
    perfect = judged_item_metrics(dataset, ["q"], {"s": lambda q, rows: [{0: 3, 1: 2, 2: 1}[r] for r in rows]})["s"]
    assert perfect == {"queries": 1, "ndcg@10_rerank": 1.0, "pairwise_accuracy": 1.0, "pairs": 3, "auc": 1.0}
    # reversed order: every pair wrong, the relevant item last
    reverse = judged_item_metrics(dataset, ["q"], {"s": lambda q, rows: [{0: 1, 1: 2, 2: 3}[r] for r in rows]})["s"]
    assert reverse["pairwise_accuracy"] == 0.0 and reverse["auc"] == 0.0
    ideal = 2 + 1 / math.log2(3)
    assert reverse["ndcg@10_rerank"] == pytest.approx((1 / math.log2(3) + 2 / 2) / ideal)
    # ties count half
    ties = judged_item_metrics(dataset, ["q"], {"s": lambda q, rows: [0.0] * len(rows)})["s"]
    assert ties["pairwise_accuracy"] == 0.5 and ties["auc"] == 0.5


def test_training_pairs_refuse_any_query_outside_the_training_split():
    dataset = split_dataset()
    cfg = JudgeConfig(hard_negatives=1, random_negatives=1)
    pairs = training_pairs(dataset, dataset.split("train"), {q: [0, 1, 2, 3] for q in dataset.queries}, cfg)
    assert {q for q, _, _ in pairs} == {dataset.queries[q] for q in dataset.split("train")}
    assert {y for _, _, y in pairs} == {0.0, 1.0}  # gain / max gain
    with pytest.raises(ValueError, match="training-split queries only"):
        training_pairs(dataset, dataset.split("train") + dataset.split("valid")[:1], {}, cfg)


def test_leser_judge_train_sees_training_queries_only(tmp_path, monkeypatch):
    """A spy on the judge's every batch: no valid or test query reaches its training, and its report reads valid."""
    pytest.importorskip("bm25s")
    pytest.importorskip("Stemmer")
    from leser import judge as leser_judge
    from leser.config import load_config
    from test_retrieval_engine import save_tiny_bert

    dataset = split_dataset()
    monkeypatch.setattr(leser_judge, "load_dataset", lambda path: dataset)
    monkeypatch.setenv("LESER_CACHE", str(tmp_path / "cache"))
    seen: list[str] = []
    encode = RelevanceJudge.encode_pairs

    def spy(self, queries, titles):
        seen.extend(queries)
        return encode(self, queries, titles)

    monkeypatch.setattr(RelevanceJudge, "encode_pairs", spy)
    trained_on = []
    original_fine_tune = leser_judge.fine_tune

    def fine_tune_spy(judge, pairs, cfg, log=None):
        trained_on.extend(q for q, _, _ in pairs)
        return original_fine_tune(judge, pairs, cfg, log)

    monkeypatch.setattr(leser_judge, "fine_tune", fine_tune_spy)
    bert = save_tiny_bert(tmp_path / "bert", seed=0)
    cfg = load_config(None, [f'engine.encoder="{bert}"', f'judge.base_model="{bert}"', "judge.batch_size=4",
                             f'judge.output_dir="{tmp_path / "judge"}"', 'judge.precision="fp32"'])
    folder = leser_judge.train(cfg)
    assert trained_on and {split_of(q) for q in trained_on} == {"train"}
    report = json.loads((folder / "judge_report.json").read_text())
    assert report["split"] == "valid" and report["num_queries"] == 3
    assert {split_of(q) for q in seen} == {"train", "valid"}  # train for training, valid for the report
    assert (folder / "config.json").is_file() and (folder / "model.safetensors").is_file()
    assert "training split only" in (folder / "README.md").read_text()
    reloaded = RelevanceJudge(str(folder), device="cpu")
    assert reloaded.model.config.num_labels == 1


def test_training_with_the_judge_reward_never_sees_a_test_query(tmp_path, monkeypatch, tiny_tokenizer):
    """``leser train`` with ``reward.relevance = "judge"``, spied on: every rollout draws training queries, the
    reward and the judge see training queries and (for validation) valid ones, and no test query at all."""
    import leser.runtime
    from conftest import build_tiny_llama
    from grpo.trainer import GRPOTrainer
    from leser.cli import main
    from test_retrieval_engine import save_tiny_bert

    dataset = split_dataset()
    monkeypatch.setattr(leser.runtime, "load_dataset", lambda path: dataset)
    monkeypatch.setenv("LESER_CACHE", str(tmp_path / "cache"))
    split_by_id = {q: split_of(t) for q, t in dataset.queries.items()}
    rolled, scored, judged = [], [], []
    rollout, score, score_many = GRPOTrainer.rollout, SearchReward.score, RelevanceJudge.score_many
    monkeypatch.setattr(GRPOTrainer, "rollout", lambda self, qids, *a: rolled.extend(qids) or rollout(self, qids, *a))
    monkeypatch.setattr(SearchReward, "score", lambda self, qids, e: scored.extend(qids) or score(self, qids, e))
    monkeypatch.setattr(RelevanceJudge, "score_many",
                        lambda self, queries, *a: judged.extend(queries) or score_many(self, queries, *a))
    policy = tmp_path / "policy"
    build_tiny_llama(tiny_tokenizer).save_pretrained(policy)
    tiny_tokenizer.save_pretrained(policy)
    settings = [f'policy.model="{policy}"', f'engine.encoder="{save_tiny_bert(tmp_path / "bert", seed=0)}"',
                'reward.relevance="judge"', 'reward.relevance_on="fused"', "reward.headroom_only=false",
                f'judge.model="{save_tiny_cross_encoder(tmp_path / "judge")}"', 'judge.precision="fp32"',
                f'train.output_dir="{tmp_path / "run"}"', "train.max_steps=2", "train.num_prompts_per_step=2",
                "train.num_generations=2", "train.max_completion_length=6", "train.eval_queries=2",
                "train.save_steps=10", "distill.before_train=false", 'train.precision="fp32"']
    assert main(["train", *[a for s in settings for a in ("--set", s)]]) == 0
    assert rolled and {split_by_id[q] for q in rolled} == {"train"}
    assert {split_by_id[q] for q in scored} == {"train", "valid"}  # valid: the validation reward only
    assert judged and {split_of(q) for q in judged} <= {"train", "valid"}
