"""``make eval``'s numbers by hand: nDCG@10 and R@100 of the original, the pseudo-relevance and a fixed-expansions
row on a toy catalog and a fake engine, and each row's paired differences."""
from __future__ import annotations

import math

import pytest

from leser.config import load_config
from leser.evaluate import pseudo_relevance_expansions
from leser.scoring import ORIGINAL, PSEUDO_RELEVANCE, EngineScores, Expansions
from retrieval import Dataset
from retrieval.plan import FusionSettings, RetrievalPlan, top_titles
from test_reward import FakeEngine

L3, L5 = math.log2(3), math.log2(5)
TITLES = ["cordless drill", "drill bits", "hammer drill", "impact driver", "blue sofa", "sofa cushion",
          "leather couch", "led bulb", "bulb pack", "light fixture"]
QIDS = ["qa", "qb", "qc"]
ENGINE = {
    # the original queries
    "drill": [0, 1, 2], "sofa": [4, 5, 6], "bulb": [7, 8],
    # pseudo-relevance: the query plus the new words of each of the top 2 titles
    "drill cordless": [0], "drill bits": [1, 3], "sofa blue": [4], "sofa cushion": [5], "bulb led": [7],
    "bulb pack": [8, 9],
    # the fixed row
    "impact driver": [3, 2], "leather couch": [6], "drill bulb": [0, 8],
}
FIXED = [["impact driver"], ["leather couch"], ["drill bulb"]]

# Per query, by hand (gains: qa {2: 2, 3: 2, 1: 1}, qb {6: 2, 4: 0}, qc {7: 2, 9: 1}; relevant at gain 2).
# RRF, every list weight 1, k 60; ties go to the first appearance (list order, then rank).
IDEAL = {"qa": 2 + 2 / L3 + 1 / 2, "qb": 2.0, "qc": 2 + 1 / L3}
WANT = {
    # qa [0, 1, 2]: DCG 1/log2(3) + 2/log2(4); R 1/2 ({2} of {2, 3}). qb [4, 5, 6]: 2/2; R 1. qc [7, 8]: 2; R 1.
    ORIGINAL: {"ndcg": [(1 / L3 + 1) / IDEAL["qa"], 1 / 2, 2 / IDEAL["qc"]], "recall": [0.5, 1.0, 1.0]},
    # qa + [0] + [1, 3]: 0 = 2/61, 1 = 1/62 + 1/61, 3 = 1/62, 2 = 1/63 -> [0, 1, 3, 2]: 1/log2(3) + 1 + 2/log2(5).
    # qb + [4] + [5]: [4, 5, 6], unchanged. qc + [7] + [8, 9]: 7 = 2/61, 8 = 1/62 + 1/61, 9 = 1/62 -> [7, 8, 9]:
    # 2 + 1/log2(4).
    PSEUDO_RELEVANCE: {"ndcg": [(1 / L3 + 1 + 2 / L5) / IDEAL["qa"], 1 / 2, 2.5 / IDEAL["qc"]],
                       "recall": [1.0, 1.0, 1.0]},
    # qa + [3, 2]: 2 = 1/63 + 1/62, then 0 and 3 tie at 1/61 (0 first), 1 = 1/62 -> [2, 0, 3, 1]: 2 + 1 + 1/log2(5).
    # qb + [6]: 6 = 1/63 + 1/61, 4 = 1/61, 5 = 1/62 -> [6, 4, 5]: 2. qc + [0, 8]: 8 = 2/62, then 7 and 0 tie at
    # 1/61 (7 first) -> [8, 7, 0]: 2/log2(3), worse than the original.
    "fixed": {"ndcg": [(3 + 1 / L5) / IDEAL["qa"], 1.0, (2 / L3) / IDEAL["qc"]], "recall": [1.0, 1.0, 1.0]},
}


def toy():
    dataset = Dataset(name="toy", product_ids=[f"p{i}" for i in range(len(TITLES))], product_texts=TITLES,
                      queries={"qa": "drill", "qb": "sofa", "qc": "bulb"},
                      qrels={"qa": {2: 2.0, 3: 2.0, 1: 1.0}, "qb": {6: 2.0, 4: 0.0}, "qc": {7: 2.0, 9: 1.0}},
                      relevant_gain=2.0)
    engine = FakeEngine(ENGINE)
    plan = RetrievalPlan("fake", [engine], engine, FusionSettings(1.0, 1.0, rrf_k=60), depth=100)
    return dataset, plan


def mean(values):
    return sum(values) / len(values)


def test_eval_rows_against_hand_computed_ndcg_recall_and_paired_differences():
    dataset, plan = toy()
    scores = EngineScores(plan, dataset, QIDS)
    cfg = load_config(None, ["prompt.num_expansions=2"])
    contexts = [top_titles(TITLES, r, 5) for r in scores.originals]
    prf = pseudo_relevance_expansions(cfg, [dataset.queries[q] for q in QIDS], contexts)
    assert prf.expansions == [["drill cordless", "drill bits"], ["sofa blue", "sofa cushion"],
                              ["bulb led", "bulb pack"]]
    scores.add(PSEUDO_RELEVANCE, prf.expansions)
    scores.add("fixed", FIXED)
    rows = {ORIGINAL: scores.row(ORIGINAL), PSEUDO_RELEVANCE: scores.row(PSEUDO_RELEVANCE, prf),
            "fixed": scores.row("fixed", Expansions(FIXED, [[], [], []], 0.0, {}))}
    for system, want in WANT.items():
        metrics = rows[system].metrics
        assert metrics["ndcg@10"] == pytest.approx(mean(want["ndcg"]), abs=1e-9), system
        assert metrics["recall@100"] == pytest.approx(mean(want["recall"]), abs=1e-9), system
        gained = [r - o for r, o in zip(want["recall"], WANT[ORIGINAL]["recall"])]
        assert metrics["coverage_increment"] == pytest.approx(mean(gained), abs=1e-9), system
    assert rows[ORIGINAL].vs_original is None
    # Paired: the mean of per-query differences, and which queries moved.
    for system, baseline, key in (("fixed", ORIGINAL, "vs_original"), (PSEUDO_RELEVANCE, ORIGINAL, "vs_original"),
                                  ("fixed", PSEUDO_RELEVANCE, "vs_pseudo_relevance")):
        for metric, part in (("ndcg@10", "ndcg"), ("recall@100", "recall")):
            diffs = [a - b for a, b in zip(WANT[system][part], WANT[baseline][part])]
            got = getattr(rows[system], key)[metric]
            assert got["mean"] == pytest.approx(mean(diffs), abs=1e-9), (system, baseline, metric)
            assert (got["better"], got["worse"], got["same"]) == (sum(d > 1e-12 for d in diffs),
                                                                  sum(d < -1e-12 for d in diffs),
                                                                  sum(abs(d) <= 1e-12 for d in diffs))
            assert min(diffs) - 1e-9 <= got["ci_low"] <= got["mean"] <= got["ci_high"] <= max(diffs) + 1e-9
    # the counts by hand: the fixed row lifts qa and qb and sinks qc on nDCG@10; on R@100 only qa moves
    fixed = rows["fixed"].vs_original
    assert (fixed["ndcg@10"]["better"], fixed["ndcg@10"]["worse"]) == (2, 1)
    assert (fixed["recall@100"]["better"], fixed["recall@100"]["same"]) == (1, 2)
    assert rows[PSEUDO_RELEVANCE].vs_pseudo_relevance is None
    assert rows["fixed"].rule_violation_rate == 0.0


def test_a_rows_violation_rate_latency_and_examples():
    """Per query: 1 of 2 queries with a violation is 50%, 1 s for 2 queries is 500 ms a query, and at most 5
    examples are kept; a query without judgements scores 0; the mean of no queries is 0."""
    import numpy as np

    from leser.scoring import mean_scores, per_query_scores

    dataset, plan = toy()
    scores = EngineScores(plan, dataset, QIDS[:2])
    out = Expansions(FIXED[:2], [["too many words"], []], 1.0, {})
    scores.add("fixed", out.expansions)
    row = scores.row("fixed", out)
    assert row.rule_violation_rate == 0.5 and row.latency_ms_per_query == 500.0
    assert [e["query"] for e in row.examples] == ["drill", "sofa"]
    many = [f"q{i}" for i in range(7)]
    dataset.queries.update({q: "drill" for q in many})
    wide = EngineScores(plan, dataset, many)
    wide.add("fixed", [["impact driver"]] * 7)
    assert len(wide.row("fixed", Expansions([["impact driver"]] * 7, [[]] * 7, 0.0, {})).examples) == 5
    unjudged = per_query_scores(dataset, ["q0"], [wide.originals[0]], [wide.originals[0]])
    assert all(v.tolist() == [0.0] for v in unjudged.values())
    assert mean_scores({"ndcg@10": np.zeros(0)}) == {"ndcg@10": 0.0}
