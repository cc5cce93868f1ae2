"""Platform rules and search-engine reward parts, on a fake engine with hand-computed numbers."""
import math
from types import SimpleNamespace

import pytest
import torch

from retrieval import Dataset
from retrieval.plan import FusionSettings, RetrievalPlan
from reward import RewardConfig, RulesConfig, SearchReward, check, judge, usable

RULES = RulesConfig(max_expansions=3, max_words=4, max_chars=30, banned_terms=["cheap"])


@pytest.mark.parametrize(
    "expansions, expected",
    [
        ([], ["unparsable"]),
        (["cordless drill"], []),
        (["drill bit", "saw", "hammer", "nails"], ["count"]),
        (["1"], ["too_short"]),
        (["[1", "cordless drill kit"], ["too_short"]),
        (["K"], ["too_short"]),
        (["one two three four five"], ["too_long"]),
        (["x" * 31], ["too_long"]),
        (["bad\x07bell"], ["not_printable"]),
        (["Cordless Drill", "cordless  drill"], ["duplicate"]),
        (["DRILL"], ["equals_query"]),
        (["cheap drill"], ["banned_term"]),
        (["cheapest drill"], []),  # a word boundary: 'cheap' is banned, 'cheapest' is another word
        (["drill $20"], ["url_or_price"]),
        (["drill 20 dollars"], ["url_or_price"]),
        (["www.drills.com"], ["url_or_price"]),
        (["perceuse sans fil", "taladro inalámbrico"], []),  # non-ASCII is printable
        (["drill", "drill", "drill", "drill"], ["count", "duplicate", "equals_query"]),
        # the limits themselves are allowed: 3 expansions, 4 words, 30 characters
        (["drill bit", "saw", "hammer"], []),
        (["one two three four"], []),
        (["x" * 30], []),
        (["cordless drill", "cordlessdrill"], ["duplicate"]),  # spaces are ignored, not replaced
    ],
)
def test_rules(expansions, expected):
    assert check(expansions, "drill", RULES) == expected


def test_usable_keeps_first_distinct_valid_expansions():
    got = usable(["drill", "Drill Set", "drill set", "cheap drill", "impact driver", "hammer drill", "saw"],
                 "drill", RULES)
    assert got == ["Drill Set", "impact driver", "hammer drill"]


def test_judge_names_why_each_dropped_expansion_was_dropped():
    rules = RulesConfig(max_expansions=2)
    answer = ["oak desk drawer", "OAK DESK", "x", "oak  desk drawer", "oak writing desk", "oak desk shelf"]
    got = judge("oak desk", answer, rules)
    assert got == {
        "query": "oak desk",
        "expansions": ["oak desk drawer", "oak writing desk"],
        "dropped": [{"expansion": "OAK DESK", "violations": ["equals_query"]},
                    {"expansion": "x", "violations": ["too_short"]},
                    {"expansion": "oak  desk drawer", "violations": ["duplicate"]},  # fine alone, a repeat here
                    {"expansion": "oak desk shelf", "violations": ["count"]}],  # fine, but after 2 kept ones
        "violations": ["count", "too_short", "duplicate", "equals_query"],  # the whole answer, as the reward sees it
    }
    assert judge("oak desk", [], rules) == {"query": "oak desk", "expansions": [], "dropped": [],
                                            "violations": ["unparsable"]}
    # an exact repeat of a kept expansion, wherever it comes, is a duplicate, not kept twice
    got = judge("oak desk", ["oak desk drawer", "oak writing desk", "oak writing desk", "oak desk drawer"], rules)
    assert got["expansions"] == ["oak desk drawer", "oak writing desk"]
    assert got["dropped"] == [{"expansion": "oak writing desk", "violations": ["duplicate"]},
                              {"expansion": "oak desk drawer", "violations": ["duplicate"]}]
    # a dropped expansion's reasons are its own: the answer's count is not one of them
    got = judge("oak desk", ["oak desk drawer", "x"], RulesConfig(min_expansions=2))
    assert got["dropped"] == [{"expansion": "x", "violations": ["too_short"]}]


class FakeEngine:
    """Returns fixed rankings per text; counts calls so batching can be checked."""

    def __init__(self, table: dict[str, list[int]]):
        self.table, self.calls = table, []

    def search(self, texts, k):
        self.calls.append(list(texts))
        ids = torch.full((len(texts), k), -1, dtype=torch.long)
        for i, t in enumerate(texts):
            row = self.table.get(t, [])[:k]
            ids[i, : len(row)] = torch.tensor(row, dtype=torch.long)
        scores = torch.where(ids >= 0, 1.0 / (1 + torch.arange(k).float()).expand(len(texts), k), -math.inf)
        return ids, scores


def make_env(original_weight: float = 1.0, **reward_kw):
    dataset = Dataset(
        name="toy",
        product_ids=[f"p{i}" for i in range(6)],
        product_texts=[f"title {i}" for i in range(6)],
        queries={"q": "drill"},
        qrels={"q": {0: 2.0, 3: 2.0, 5: 1.0}},
        relevant_gain=2.0,
    )
    engine = FakeEngine({"drill": [0, 1, 2], "impact driver": [3, 4], "hammer drill": [5, 3]})
    cfg = RewardConfig(relevance_k=2, coverage_k=3, **reward_kw)
    plan = RetrievalPlan("fake", [engine], engine, FusionSettings(original_weight, 1.0, rrf_k=60), depth=3)
    return SearchReward(dataset, plan, cfg, RulesConfig()), engine


def test_reward_parts_by_hand():
    env, engine = make_env(rule_penalty=0.5)
    parts = env.score(["q", "q", "q"], [["impact driver"], ["hammer drill", "drill"], []])
    # completion 0: 'impact driver' ranks [3, 4]; gains [2, 0]: DCG@2 = 2/log2(2) = 2;
    # ideal gains [2, 2]: IDCG = 2 + 2/log2(3) = 3.2619; nDCG = 0.6131.
    assert parts.relevance[0].item() == pytest.approx(2 / (2 + 2 / math.log2(3)), abs=1e-4)
    # fused RRF (original weight 1, rrf_k 60): original [0, 1, 2], expansion [3, 4] -> top 3 = [0, 3, 1]:
    # relevant {0, 3}: recall 1.0; the original alone reaches {0}: 0.5. Increment 0.5.
    assert parts.coverage[0].item() == pytest.approx(0.5)
    assert parts.rules[0].item() == 0.0
    assert parts.total[0].item() == pytest.approx(parts.relevance[0].item() + 0.5, abs=1e-6)
    # completion 1: 'drill' equals the query: it is penalised and not searched; 'hammer drill' ranks [5, 3]:
    # gains [1, 2]: DCG = 1 + 2/log2(3) = 2.2619, nDCG = 2.2619 / 3.2619 = 0.6934.
    assert parts.violations[1] == ["equals_query"]
    assert parts.expansions_used[1] == ["hammer drill"]
    assert parts.relevance[1].item() == pytest.approx((1 + 2 / math.log2(3)) / (2 + 2 / math.log2(3)), abs=1e-4)
    assert parts.rules[1].item() == pytest.approx(-0.5)
    # completion 2: nothing parsable: the floor.
    assert parts.total[2].item() == pytest.approx(-1.0)
    # one batched call for all expansions of the rollout, after the original query's (cached) call
    assert engine.calls == [["impact driver", "hammer drill"], ["drill"]]


def test_relevance_on_expansions_is_the_mean_of_their_own_ndcg():
    env, _ = make_env()
    parts = env.score(["q", "q"], [["impact driver", "hammer drill"], []])
    ideal = 2 + 2 / math.log2(3)
    assert parts.relevance[0].item() == pytest.approx((2 / ideal + (1 + 2 / math.log2(3)) / ideal) / 2, abs=1e-5)
    assert parts.relevance[1].item() == 0.0  # no expansion: no relevance (the total is the unparsable floor)


def test_a_query_without_judgements_gains_nothing():
    env, _ = make_env(deep_weight=1.0)
    env.dataset.queries["unjudged"] = "drill"
    parts = env.score(["unjudged"], [["impact driver"]])
    assert [parts.relevance.item(), parts.coverage.item(), parts.deep.item()] == [0.0, 0.0, 0.0]


def test_headroom_searches_the_queries_in_chunks_of_512():
    env, engine = make_env()
    qids = [f"q{i}" for i in range(600)]
    env.dataset.queries.update({q: "drill" for q in qids})
    env.dataset.qrels.update({q: {3: 2.0} for q in qids})  # the original [0, 1, 2] misses item 3
    assert env.with_headroom(qids) == qids
    assert [len(texts) for texts in engine.calls] == [512, 88]


def test_relevance_on_fused_list_by_hand():
    env, _ = make_env(relevance_on="fused")
    parts = env.score(["q", "q"], [["impact driver"], ["title 9"]])
    # fused top 3 = [0, 3, 1] (see above); its top 2 [0, 3] has gains [2, 2]: the ideal, nDCG@2 = 1.
    # The original's top 2 [0, 1] has gains [2, 0]: nDCG@2 = 2 / (2 + 2/log2(3)) = 0.6131. Delta 0.3869.
    assert parts.relevance[0].item() == pytest.approx(1 - 2 / (2 + 2 / math.log2(3)), abs=1e-4)
    # an expansion that finds nothing leaves the fused list equal to the original: no gain, no loss.
    assert parts.relevance[1].item() == pytest.approx(0.0)


def test_relevance_on_fused_needs_labels():
    with pytest.raises(ValueError, match=r"^reward\.relevance_on = 'fused' needs reward\.relevance = 'labels'$"):
        make_env(relevance_on="fused", relevance="label_free")
    with pytest.raises(ValueError, match="relevance_on"):
        make_env(relevance_on="merged")


def test_original_results_are_cached():
    env, engine = make_env()
    env.score(["q"], [["impact driver"]])
    env.score(["q"], [["impact driver"]])
    assert sum(c == ["drill"] for c in engine.calls) == 1


def test_original_weight_protects_the_head():
    # weight 3 on the original: its rank-2 item (1) beats the expansion's rank-1 item (3).
    env, _ = make_env(original_weight=3.0)
    parts = env.score(["q"], [["impact driver"]])
    # fused top 3 = [0, 1, 2]... 3/(61)=.0492, 3/62=.0484, 3/63=.0476 vs 1/61 = .0164: 3 falls out of the top 3.
    assert parts.coverage[0].item() == pytest.approx(0.0)


def test_context_titles():
    env, _ = make_env()
    assert env.context(["q"], 2) == [["title 0", "title 1"]]
    assert env.context(["q"], 0) == [[]]


def test_shown_query_is_typed_or_spelled_and_prompts_show_it(tiny_tokenizer):
    from grpo.batch import make_prompts
    from policy import PromptConfig
    from retrieval import Speller

    env, engine = make_env()
    env.dataset.product_texts[:] = ["Cordless Drill", "Drill Bits", "Hammer Drill", "Saw", "Tape", "Level"]
    env.dataset.queries["q"] = "cordles drill"
    engine.table["cordles drill"] = [0, 1, 2]
    assert env.shown_query("cordles drill", ["Cordless Drill"]) == "cordles drill"  # no speller: as typed
    env.speller = Speller.for_plan(env.dataset.product_texts, env.plan)
    assert env.shown_query("cordles drill", ["Cordless Drill"]) == "cordless drill"
    prompt_cfg = PromptConfig(context_k=2, max_prompt_tokens=256, system_prompt="Rewrite the query.")
    queries, [prompt], contexts = make_prompts(tiny_tokenizer, env, ["q"], prompt_cfg)
    # The prompt shows the fixed query; the engine ran, and the rules will read, the query as typed.
    assert queries == ["cordles drill"] and "Query: cordless drill\n" in prompt
    assert engine.calls[0] == ["cordles drill"] and contexts == [["Cordless Drill", "Drill Bits"]]


def test_the_shown_titles_break_the_spellers_ties():
    from retrieval import Speller

    env, _ = make_env()
    env.dataset.product_texts[:] = ["Walnut Table", "Walnut Table Lamp", "Wallet Tray", "Saw", "Tape", "Level"]
    speller = Speller.for_plan(env.dataset.product_texts, env.plan)
    env = SearchReward(env.dataset, env.plan, env.cfg, env.rules, speller=speller)
    # 'walnet' is one letter from 'walnut' (2 titles) and from 'wallet' (1): the titles on screen decide.
    assert env.shown_query("walnet tray", ["Saw"]) == "walnut tray"
    assert env.shown_query("walnet tray", ["Wallet Tray"]) == "wallet tray"


def test_bad_relevance_mode():
    with pytest.raises(ValueError, match="relevance"):
        make_env(relevance="clicks")


def test_label_free_needs_a_dense_expansion_engine():
    with pytest.raises(ValueError, match=r"^reward\.relevance = 'label_free' needs a plan whose expansions go to "
                                         r"the dense engine$"):
        make_env(relevance="label_free")


def test_reward_cut_offs_must_fit_in_the_plan_depth():
    env, _ = make_env()
    with pytest.raises(ValueError, match=r"^reward cut-offs \(2, 4\) exceed the plan depth 3$"):
        SearchReward(env.dataset, env.plan, RewardConfig(relevance_k=2, coverage_k=4), RulesConfig())


def test_label_free_parts_by_hand():
    FakeEngine.embeddings = torch.eye(6)  # item i is the unit vector e_i
    try:
        env, engine = make_env(relevance="label_free")
    finally:
        del FakeEngine.embeddings
    engine.embeddings = torch.eye(6)
    query_vec = torch.zeros(6)
    query_vec[[0, 3]] = 2 ** -0.5  # "drill" points between items 0 and 3
    calls = []
    engine.encoder = SimpleNamespace(encode=lambda texts: calls.append(texts) or query_vec.unsqueeze(0))
    parts = env.score(["q", "q"], [["impact driver"], ["impact driver", "hammer drill"]])
    # 'impact driver' top-2 = [3, 4]: cosines [0.7071, 0], mean 0.3536; both are outside the original's
    # top-3 [0, 1, 2], so the cosine-weighted share of new items is (0.7071 + 0) / 2 as well.
    assert parts.relevance[0].item() == pytest.approx(0.5 * 2 ** -0.5, abs=1e-5)
    assert parts.coverage[0].item() == pytest.approx(0.5 * 2 ** -0.5, abs=1e-5)
    # 'hammer drill' top-2 = [5, 3]: cosines [0, 0.7071]; the mean over both expansions' 4 items is 0.3536.
    assert parts.relevance[1].item() == pytest.approx(0.5 * 2 ** -0.5, abs=1e-5)
    assert calls == [["drill"]]  # the query is encoded once for all its completions
    assert parts.deep.tolist() == [0.0, 0.0]  # the deep term needs labels
    # 'drill bits' finds only item 0 (row 0 of the catalog: a result, cosine 0.7071), which the original's top 3
    # already holds: relevance (0.7071 + 0) / 2, no coverage.
    engine.table["drill bits"] = [0]
    parts = env.score(["q"], [["drill bits"]])
    assert parts.relevance[0].item() == pytest.approx(0.5 * 2 ** -0.5, abs=1e-5)
    assert parts.coverage[0].item() == 0.0


def test_headroom_keeps_only_queries_an_expansion_can_improve():
    dataset = Dataset(name="toy", product_ids=[f"p{i}" for i in range(6)],
                      product_texts=[f"title {i}" for i in range(6)],
                      queries={"open": "drill", "done": "saw", "deep": "nail"},
                      qrels={"open": {0: 2.0, 3: 2.0}, "done": {0: 2.0, 3: 2.0, 5: 1.0}, "deep": {0: 2.0, 5: 2.0}},
                      relevant_gain=2.0)
    # open: [0, 1, 2] misses 3 in the top 2 (nDCG@2 < 1); done: [0, 3, 5] is ideal; deep: [0, 5] puts both
    # relevant items in the top 2, ideal as well.
    engine = FakeEngine({"drill": [0, 1, 2], "saw": [0, 3, 5], "nail": [0, 5]})
    plan = RetrievalPlan("fake", [engine], engine, FusionSettings(1.0, 1.0, rrf_k=60), depth=3)
    env = SearchReward(dataset, plan, RewardConfig(relevance_k=2, coverage_k=3), RulesConfig())
    assert env.with_headroom(["open", "done", "deep"]) == ["open"]
    # a relevant item beyond the coverage cut-off is headroom even with a perfect head
    engine.table["saw"] = [0, 3, 1]
    env = SearchReward(dataset, plan, RewardConfig(relevance_k=1, coverage_k=3), RulesConfig())
    assert env.with_headroom(["done"]) == []  # item 5 has gain 1 < relevant_gain: not missed
    dataset.qrels["done"][5] = 2.0
    env = SearchReward(dataset, plan, RewardConfig(relevance_k=1, coverage_k=3), RulesConfig())
    assert env.with_headroom(["done"]) == ["done"]


def test_deep_term_sees_moves_below_the_cut_offs():
    env, _ = make_env(deep_weight=1.0, relevance_on="fused")
    # 'hammer drill' ranks [5, 3]; fused (RRF, ties by first appearance) = [0, 5, 1] at depth 3: gains 2, 1, 0
    # against the original [0, 1, 2]: 2, 0, 0. nDCG@3 gains 1/log2(3) over the ideal 2 + 2/log2(3) + 1/2.
    parts = env.score(["q"], [["hammer drill"]])
    ideal = 2 + 2 / math.log2(3) + 1 / 2
    assert parts.deep[0].item() == pytest.approx((1 / math.log2(3)) / ideal, abs=1e-5)
    parts_sum = (parts.relevance[0] + parts.coverage[0] + parts.deep[0]).item()  # a float: approx takes no tensor
    assert parts.total[0].item() == pytest.approx(parts_sum, abs=1e-6)


def test_label_free_parts_count_empty_slots_and_seen_items_as_nothing():
    FakeEngine.embeddings = torch.eye(6)
    try:
        env, engine = make_env(relevance="label_free")
    finally:
        del FakeEngine.embeddings
    engine.embeddings = torch.eye(6)
    engine.table.update({"lonely": [4], "drill set": [1, 3]})
    query_vec = torch.zeros(6)
    query_vec[[0, 3]] = 2 ** -0.5
    engine.encoder = SimpleNamespace(encode=lambda texts: query_vec.unsqueeze(0))
    parts = env.score(["q", "q", "q"], [["lonely"], ["drill set"], ["drill"]])
    # 'lonely' finds only item 4 (cosine 0): its empty second slot is not catalog row 0 (cosine 0.7071).
    assert parts.relevance[0].item() == pytest.approx(0.0) and parts.coverage[0].item() == pytest.approx(0.0)
    # 'drill set' finds items 1 (cosine 0, already in the original's top 3) and 3 (0.7071, new).
    assert parts.relevance[1].item() == pytest.approx(0.5 * 2 ** -0.5, abs=1e-5)
    assert parts.coverage[1].item() == pytest.approx(0.5 * 2 ** -0.5, abs=1e-5)
    # 'drill' equals the query: nothing usable, so no relevance and no coverage, only the rule penalty.
    assert parts.relevance[2].item() == 0.0 and parts.coverage[2].item() == 0.0
    assert parts.total[2].item() == pytest.approx(-0.25)


def test_headroom_from_the_ranking_alone():
    """nDCG@k below 1 with every relevant item already in the top coverage_k is still headroom."""
    dataset = Dataset(name="toy", product_ids=[f"p{i}" for i in range(6)],
                      product_texts=[f"title {i}" for i in range(6)], queries={"q": "drill"},
                      qrels={"q": {0: 2.0, 1: 1.0, 2: 2.0}}, relevant_gain=2.0)
    engine = FakeEngine({"drill": [0, 1, 2]})
    plan = RetrievalPlan("fake", [engine], engine, FusionSettings(1.0, 1.0, rrf_k=60), depth=3)
    env = SearchReward(dataset, plan, RewardConfig(relevance_k=2, coverage_k=3), RulesConfig())
    assert env.with_headroom(["q"]) == ["q"]  # top 2 = gains [2, 1] against the ideal [2, 2]; recall@3 = 1
