"""Ranking metrics against hand-computed values (arithmetic in the comments)."""
from __future__ import annotations

import math

import pytest
import torch

from retrieval.metrics import (
    dcg_at_k,
    evaluate_rankings,
    query_metrics,
    mrr_at_k,
    ndcg_at_k,
    recall_at_k,
)

# Judgments of one query: items 7 and 3 relevant (gain 2), item 5 partly (gain 1), item 9 judged irrelevant.
GAINS = {7: 2.0, 3: 2.0, 5: 1.0, 9: 0.0}


def test_dcg():
    # ranks 1..4 hold 3 (g2), 1 (unjudged), 5 (g1), 9 (g0):
    # 2/log2(2) + 0/log2(3) + 1/log2(4) + 0/log2(5) = 2 + 0.5 = 2.5
    assert dcg_at_k([3, 1, 5, 9], GAINS, 4) == pytest.approx(2.5)
    # k = 1 keeps only rank 1: 2/1 = 2
    assert dcg_at_k([3, 1, 5, 9], GAINS, 1) == pytest.approx(2.0)


def test_ndcg():
    # ideal order 7, 3, 5: 2/1 + 2/log2(3) + 1/log2(4) = 2 + 1.26186 + 0.5 = 3.76186
    ideal = 2 + 2 / math.log2(3) + 0.5
    assert ndcg_at_k([3, 1, 5, 9], GAINS, 10) == pytest.approx(2.5 / ideal)
    assert ndcg_at_k([7, 3, 5], GAINS, 10) == pytest.approx(1.0)
    # At k = 2 the ideal is 2 + 2/log2(3) = 3.26186; ranking [1, 7] earns 2/log2(3) = 1.26186 -> 0.38685
    assert ndcg_at_k([1, 7], GAINS, 2) == pytest.approx((2 / math.log2(3)) / (2 + 2 / math.log2(3)))
    assert ndcg_at_k([1, 2], {1: 0.0}, 10) == 0.0  # no positive gain


def test_padding_and_repeats_do_not_count():
    # -1 is padding; the repeated 3 counts once: 2/1 + (nothing for the repeat) = 2
    assert dcg_at_k(torch.tensor([3, 3, -1, -1]), GAINS, 4) == pytest.approx(2.0)
    assert recall_at_k([-1, -1], GAINS, 2, relevant_gain=2) == 0.0


def test_recall():
    # relevant (gain >= 2) = {7, 3}; top-3 of [3, 1, 5, 7] holds 3 only -> 1/2
    assert recall_at_k([3, 1, 5, 7], GAINS, 3, relevant_gain=2.0) == pytest.approx(0.5)
    # top-4 holds both -> 2/2
    assert recall_at_k([3, 1, 5, 7], GAINS, 4, relevant_gain=2.0) == pytest.approx(1.0)
    # with threshold 1, relevant = {7, 3, 5}; top-3 holds 3 and 5 -> 2/3
    assert recall_at_k([3, 1, 5, 7], GAINS, 3, relevant_gain=1.0) == pytest.approx(2 / 3)
    assert recall_at_k([3], {3: 1.0}, 1, relevant_gain=2.0) == 0.0  # no relevant item at all: 0 by convention


def test_mrr():
    # first gain >= 2 item is 7 at rank 3 -> 1/3
    assert mrr_at_k([1, 5, 7, 3], GAINS, 10, relevant_gain=2.0) == pytest.approx(1 / 3)
    # threshold 1: item 5 at rank 2 -> 1/2
    assert mrr_at_k([1, 5, 7, 3], GAINS, 10, relevant_gain=1.0) == pytest.approx(0.5)
    # cut at k = 2: 7 (rank 3) is outside -> 0
    assert mrr_at_k([1, 5, 7, 3], GAINS, 2, relevant_gain=2.0) == 0.0


def test_query_metrics_collects_each_metric_at_its_cut_offs():
    got = query_metrics([1, 5, 7, 3], GAINS, 2.0, ndcg_at=(2, 4), recall_at=(2,), mrr_at=(10,))
    assert set(got) == {"ndcg@2", "ndcg@4", "recall@2", "mrr@10"}
    assert got["ndcg@4"] == pytest.approx(ndcg_at_k([1, 5, 7, 3], GAINS, 4))
    assert got["recall@2"] == recall_at_k([1, 5, 7, 3], GAINS, 2, relevant_gain=2.0)
    assert got["mrr@10"] == mrr_at_k([1, 5, 7, 3], GAINS, 10, relevant_gain=2.0)
    assert query_metrics([1], GAINS, 2.0, ndcg_at=(), recall_at=(), mrr_at=()) == {}


def test_evaluate_rankings():
    qrels = {"a": GAINS, "b": {4: 1.0}}
    rankings = {"a": torch.tensor([7, 3, 5]), "b": [0, 4]}
    result = evaluate_rankings(rankings, qrels, relevant_gain=1.0, ks=(1, 10))
    # a: nDCG 1 (ideal order); b: 1/log2(3) over ideal 1 = 0.63093 -> mean 0.81546
    assert result["ndcg@10"] == pytest.approx((1 + 1 / math.log2(3)) / 2)
    # a: MRR 1 (7 at rank 1); b: 1/2 -> mean 0.75
    assert result["mrr@10"] == pytest.approx(0.75)
    # recall@1: a finds 7 of {7, 3, 5} = 1/3, b finds nothing = 0 -> 1/6; recall@10: a 1, b 1 -> 1
    assert result["recall@1"] == pytest.approx(1 / 6)
    assert result["recall@10"] == pytest.approx(1.0)
    assert result["n_queries"] == 2
    assert evaluate_rankings({}, qrels, 1.0)["ndcg@10"] == 0.0


def test_paired_bootstrap_interval_excludes_zero_only_for_a_consistent_gain():
    from retrieval.metrics import paired_bootstrap

    steady = paired_bootstrap([0.02, 0.01, 0.03, 0.02, 0.01, 0.02] * 20)
    assert steady["mean"] == pytest.approx(0.0183333, abs=1e-6)
    assert 0 < steady["ci_low"] < steady["mean"] < steady["ci_high"]
    assert (steady["better"], steady["worse"], steady["same"]) == (120, 0, 0)
    # The same mean from two queries' luck: the interval straddles zero.
    lucky = paired_bootstrap([1.1] + [-0.0083898] * 59 + [0.0] * 60)
    assert lucky["ci_low"] < 0 < lucky["ci_high"]
    assert (lucky["better"], lucky["worse"], lucky["same"]) == (1, 59, 60)
    assert paired_bootstrap([0.5, -0.2, 0.1]) == paired_bootstrap([0.5, -0.2, 0.1])  # seeded


def test_paired_bootstrap_rejects_what_is_not_one_value_per_query():
    from retrieval.metrics import paired_bootstrap

    with pytest.raises(ValueError, match="non-empty 1-D"):
        paired_bootstrap([])
    with pytest.raises(ValueError, match="non-empty 1-D"):
        paired_bootstrap([[0.1, 0.2]])
    with pytest.raises(ValueError, match="confidence"):
        paired_bootstrap([0.1], confidence=95)


def _half_width(ci: dict[str, float]) -> float:
    return (ci["ci_high"] - ci["ci_low"]) / 2


def test_paired_bootstrap_width_is_the_normal_approximations_and_seeded():
    """For a mean of n = 400 differences the 95% percentile interval is mean ± 1.96·sd/√n to within 5%; the
    tolerance is tight enough that a 90% interval (1.645/1.96 = 0.84 of it) or resampling n/2 queries (√2 = 1.41
    of it) fails, which is checked here too."""
    import numpy as np

    from retrieval.metrics import paired_bootstrap

    d = np.random.default_rng(7).normal(0.02, 0.1, size=400)
    normal = 1.96 * d.std() / math.sqrt(d.size)  # the bootstrap resamples the empirical distribution: ddof 0
    tolerance = 0.05

    def close(width: float) -> bool:
        return abs(width / normal - 1) < tolerance

    ci = paired_bootstrap(d)
    assert ci["mean"] == pytest.approx(d.mean())
    assert close(_half_width(ci)), _half_width(ci) / normal
    assert abs((ci["ci_low"] + ci["ci_high"]) / 2 - d.mean()) < 0.1 * normal  # centred on the mean
    # the wrong intervals fall outside the tolerance
    ninety = paired_bootstrap(d, confidence=0.90)
    assert not close(_half_width(ninety)) and _half_width(ninety) / normal == pytest.approx(1.645 / 1.96, abs=0.05)
    rng = np.random.default_rng(0)
    half = d[rng.integers(0, d.size, size=(10_000, d.size // 2))].mean(axis=1)  # n/2 per resample
    low, high = np.quantile(half, [0.025, 0.975])
    assert not close((high - low) / 2) and (high - low) / 2 / normal == pytest.approx(math.sqrt(2), abs=0.08)
    # seeded: the same seed gives the same interval, another seed another one of the same width
    assert paired_bootstrap(d, seed=3) == paired_bootstrap(d, seed=3)
    other = paired_bootstrap(d, seed=3)
    assert (other["ci_low"], other["ci_high"]) != (ci["ci_low"], ci["ci_high"]) and close(_half_width(other))


def test_catalog_row_0_counts_and_a_ranking_may_come_as_a_row_tensor():
    """Row 0 is a product like any other (only negative ids are padding), and a ``[1, n]`` tensor ranks as its
    flat list does."""
    gains = {0: 2.0, 4: 1.0}
    assert mrr_at_k([0, 4], gains, 10, relevant_gain=2.0) == 1.0
    assert recall_at_k([-1, 0], gains, 10, relevant_gain=2.0) == 1.0
    flat = query_metrics([4, 0, 3], gains, 1.0)
    assert query_metrics(torch.tensor([[4, 0, 3]]), gains, 1.0) == flat
    assert flat["mrr@10"] == 1.0 and flat["ndcg@10"] < 1.0


def test_mrr_at_10_stops_at_rank_10():
    ranked = list(range(10, 20)) + [3]  # the only relevant item at rank 11
    assert query_metrics(ranked, GAINS, 2.0)["mrr@10"] == 0.0
    assert query_metrics(ranked, GAINS, 2.0, mrr_at=(11,))["mrr@11"] == pytest.approx(1 / 11)


def test_evaluate_rankings_scores_a_query_without_judgements_0():
    result = evaluate_rankings({"a": [7, 3], "unjudged": [1, 2]}, {"a": GAINS}, relevant_gain=2.0)
    assert result["recall@10"] == 0.5 and result["mrr@10"] == 0.5 and result["n_queries"] == 2


def test_paired_bootstrap_defaults_and_confidence_bounds():
    """The report says "10,000 resamples" and seed 0: the defaults are those; a confidence must lie in (0, 1)."""
    import numpy as np

    from retrieval.metrics import paired_bootstrap

    d = np.random.default_rng(3).normal(0.01, 0.1, size=50).tolist()
    assert paired_bootstrap(d) == paired_bootstrap(d, resamples=10_000, seed=0)
    assert paired_bootstrap(d) != paired_bootstrap(d, seed=1)
    assert paired_bootstrap(d) != paired_bootstrap(d, resamples=10_001)
    for confidence in (0.0, 1.0, 1.5):
        with pytest.raises(ValueError, match="confidence"):
            paired_bootstrap(d, confidence=confidence)


def test_resamples_are_drawn_in_chunks_that_add_up():
    from retrieval.metrics import _chunks

    assert _chunks(10, 4) == [4, 4, 2]
    assert _chunks(8, 4) == [4, 4] and _chunks(3, 10) == [3]
