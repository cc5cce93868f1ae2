"""Stemmed BM25, and each retrieval plan's fused list against a brute-force RRF written from its definition."""
from __future__ import annotations

import pytest

from retrieval.engine import BM25Engine, DenseEngine
from retrieval.plan import DEFAULT_FUSION, FusionSettings, RetrievalPlan, top_titles
from test_retrieval_engine import CATALOG

pytest.importorskip("bm25s")
pytest.importorskip("Stemmer")


def test_bm25_stems_and_drops_stopwords():
    stemmed, exact = BM25Engine(CATALOG), BM25Engine(CATALOG, stemmer=None)
    # "drills" / "cushions" / "faucets" only match "drill" / "cushion" / "faucet" through the stemmer.
    ids, _ = stemmed.search(["drills", "cushions", "faucets"], 3)
    assert set(ids[0, :2].tolist()) == {0, 5} and set(ids[1, :2].tolist()) == {4, 7}
    assert set(ids[2, :2].tolist()) == {3, 6}
    assert (exact.search(["drills"], 3)[0] == -1).all()
    # Stopwords match nothing, stemmed or not.
    assert (stemmed.search(["the and for with"], 3)[0] == -1).all()
    with pytest.raises(ValueError, match="unknown stemmer"):
        BM25Engine(CATALOG, stemmer="klingon")


def test_bm25_agrees_with_rank_bm25():
    """bm25s's Lucene BM25 against rank_bm25's Okapi BM25 on the same stemmed tokens: same top hits."""
    rank_bm25 = pytest.importorskip("rank_bm25")
    import Stemmer

    engine = BM25Engine(CATALOG)
    stem = Stemmer.Stemmer("english").stemWord
    stop = {"with", "and", "for", "the"}
    tokens = lambda text: [stem(w) for w in text.lower().split() if w not in stop and len(w) > 1]  # noqa: E731
    reference = rank_bm25.BM25Okapi([tokens(t) for t in CATALOG], k1=1.5, b=0.75, epsilon=0.25)
    for query in ["cordless drills", "white faucets", "soft led bulbs", "blue cushion"]:
        expected = reference.get_scores(tokens(query))
        ids, _ = engine.search([query], 2)
        assert ids[0, 0].item() == int(expected.argmax()), query


def brute_force_rrf(lists: list[list[int]], weights: list[float], rrf_k: int, k: int) -> list[int]:
    """sum_i w_i / (rrf_k + rank_i), ranks from 1; ties by first appearance (list order, then rank)."""
    score, first = {}, {}
    position = 0
    for ranked, w in zip(lists, weights):
        for rank, item in enumerate(ranked, 1):
            if item >= 0:
                score[item] = score.get(item, 0.0) + w / (rrf_k + rank)
                first.setdefault(item, position)
            position += 1
    order = sorted(score, key=lambda i: (-score[i], first[i]))[:k]
    return order + [-1] * (k - len(order))


@pytest.fixture(scope="module")
def engines(encoder, tmp_path_factory):
    return DenseEngine(CATALOG, encoder, cache_dir=tmp_path_factory.mktemp("cache")), BM25Engine(CATALOG)


@pytest.fixture(scope="module")
def encoder(tmp_path_factory):
    from retrieval.encoder import Encoder
    from test_retrieval_engine import save_tiny_bert

    return Encoder(str(save_tiny_bert(tmp_path_factory.mktemp("bert"), seed=0)), device="cpu", batch_size=4)


@pytest.mark.parametrize("kind", ["dense", "bm25", "hybrid"])
def test_plan_fuses_as_defined(engines, kind):
    dense, bm25 = engines
    fusion, depth = DEFAULT_FUSION[kind], 8
    original = {"dense": [dense], "bm25": [bm25], "hybrid": [dense, bm25]}[kind]
    expansion = dense if kind == "dense" else bm25
    plan = RetrievalPlan(kind, original, expansion, fusion, depth=depth)
    query, rewrites = "cordless drill", ["battery charger tools", "drill bits for metal"]

    [lists] = plan.search_original([query])
    found = plan.search_expansions(rewrites + rewrites[:1])  # repeats are searched once
    assert list(found) == rewrites
    fused = plan.fuse(lists, [found[r] for r in rewrites])

    originals = [e.search([query], depth)[0][0].tolist() for e in original]
    expanded = [expansion.search([r], depth)[0][0].tolist() for r in rewrites]
    weights = [fusion.original_weight] * len(originals) + [fusion.expansion_weight] * len(expanded)
    assert fused.tolist() == brute_force_rrf(originals + expanded, weights, fusion.rrf_k, depth)
    # No expansion: the original ranking, which for the hybrid is the RRF of its two engines.
    own = plan.fuse(lists, [])
    expected = originals[0] if len(originals) == 1 else brute_force_rrf(originals, [1, 1], fusion.rrf_k, depth)
    assert own.tolist() == expected
    assert plan.rank([query])[0].tolist() == expected
    assert top_titles(CATALOG, own, 2) == [CATALOG[i] for i in expected[:2]]


def test_plan_rejects_score_fusion_across_engines(engines):
    dense, bm25 = engines
    with pytest.raises(ValueError, match="one engine"):
        RetrievalPlan("hybrid", [dense, bm25], bm25, FusionSettings(1, 1, 60), how="max")
    RetrievalPlan("dense", [dense], dense, FusionSettings(1, 1, 60), how="max")  # one engine: allowed
