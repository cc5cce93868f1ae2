"""Encoder, dense/BM25/hybrid engines and fusion, with a tiny random BERT so no model wheel is needed."""
from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest
import torch

from retrieval.encoder import Encoder
from retrieval.engine import BM25Engine, DenseEngine, exact_topk
from retrieval.fusion import fuse, fuse_with_scores

CATALOG = [
    "cordless drill with battery and charger",
    "small couch for apartment living room sofa",
    "led light bulb 60 watt soft white",
    "stainless steel kitchen faucet pull down",
    "outdoor patio chair cushion blue",
    "drill bit set for wood and metal",
    "white kitchen sink faucet",
    "blue sofa cushion cover",
    "battery charger for cordless tools",
    "soft white led bulb pack",
]


def save_tiny_bert(folder: Path, seed: int) -> Path:
    """A 2-layer, 32-d random BertModel and a word-level WordPiece tokenizer over CATALOG's words."""
    from transformers import BertConfig, BertModel, BertTokenizer

    words = sorted({w for text in CATALOG for w in text.split()})
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *words]
    BertTokenizer(vocab={word: i for i, word in enumerate(vocab)}).save_pretrained(folder)
    torch.manual_seed(seed)
    config = BertConfig(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=64)
    BertModel(config).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def encoder(tmp_path_factory) -> Encoder:
    return Encoder(str(save_tiny_bert(tmp_path_factory.mktemp("bert"), seed=0)), device="cpu", batch_size=4)


# --------------------------------------------------------------------------------------------------- encoder


def test_encoder_shapes_norms_and_order(encoder):
    emb = encoder.encode(CATALOG)
    assert emb.shape == (len(CATALOG), 32) and emb.dtype == torch.float32
    assert torch.allclose(emb.norm(dim=1), torch.ones(len(CATALOG)), atol=1e-5)
    # Length-sorted batching must not change results: each text alone gives the same vector.
    alone = torch.cat([encoder.encode([t]) for t in CATALOG])
    assert torch.allclose(emb, alone, atol=1e-5)
    assert encoder.encode([]).shape == (0, 32)


def test_encoder_name_follows_weights(tmp_path, encoder):
    other = Encoder(str(save_tiny_bert(tmp_path / "bert", seed=1)), device="cpu")
    assert other.name != encoder.name and other.name.startswith("bert@")


def test_batches_cover_every_text_once():
    ids = [[0] * n for n in (3, 1, 3, 2, 5, 3, 1, 2)]
    batches = Encoder._batches(ids, batch_size=2)
    assert sorted(i for b in batches for i in b) == list(range(len(ids)))
    assert all(len(b) <= 2 for b in batches)


# ------------------------------------------------------------------------------------------------ exact top-k


def brute_force(queries: torch.Tensor, items: torch.Tensor, k: int) -> torch.Tensor:
    return torch.argsort(queries @ items.T, dim=1, descending=True)[:, :k]


@pytest.mark.parametrize("chunk_size,query_batch", [(7, 3), (1, 100), (1000, 1)])
def test_exact_topk_matches_brute_force(chunk_size, query_batch):
    gen = torch.Generator().manual_seed(0)
    items, queries = torch.randn(50, 8, generator=gen), torch.randn(9, 8, generator=gen)
    ids, scores = exact_topk(queries, items, 10, chunk_size=chunk_size, query_batch=query_batch)
    assert ids.shape == scores.shape == (9, 10)
    assert torch.equal(ids, brute_force(queries, items, 10))
    assert torch.allclose(scores, (queries @ items.T).gather(1, ids))


def test_exact_topk_pads_beyond_catalog():
    ids, scores = exact_topk(torch.eye(2), torch.eye(2), 4, chunk_size=1)
    assert ids.tolist() == [[0, 1, -1, -1], [1, 0, -1, -1]]
    assert torch.isinf(scores[:, 2:]).all()


# ------------------------------------------------------------------------------------------------ dense engine


def test_dense_search_is_exact(encoder, tmp_path):
    engine = DenseEngine(CATALOG, encoder, cache_dir=tmp_path, chunk_size=3)  # chunks smaller than the catalog
    queries = ["cordless drill", "white faucet", "cordless drill"]
    ids, scores = engine.search(queries, 5)
    expected = brute_force(encoder.encode(queries), encoder.encode(CATALOG), 5)
    assert torch.equal(ids, expected)
    assert torch.equal(ids[0], ids[2]) and scores.dtype == torch.float32
    # A text is its own nearest neighbour.
    assert engine.search([CATALOG[4]], 1)[0].item() == 4


def test_query_cache_returns_identical_results(encoder, tmp_path, monkeypatch):
    engine = DenseEngine(CATALOG, encoder, cache_dir=tmp_path, query_cache_size=8)
    first = engine.search(["blue sofa", "led bulb"], 3)
    monkeypatch.setattr(engine.encoder, "encode", lambda texts: pytest.fail("cache miss"))
    second = engine.search(["led bulb", "blue sofa"], 3)
    assert torch.equal(second[0], first[0].flip(0)) and torch.equal(second[1], first[1].flip(0))
    second[0][0, 0] = 99  # callers may modify results without corrupting the cache
    assert torch.equal(engine.search(["led bulb"], 3)[0][0], first[0][1])


def test_embedding_cache_is_reused(encoder, tmp_path, monkeypatch):
    engine = DenseEngine(CATALOG, encoder, cache_dir=tmp_path)
    assert engine.cache_path.parent == tmp_path / "embeddings" and engine.cache_path.exists()
    calls = []
    monkeypatch.setattr(encoder, "encode", lambda texts, **kw: calls.append(texts) or pytest.fail("re-encoded"))
    again = DenseEngine(CATALOG, encoder, cache_dir=tmp_path)
    assert not calls and torch.equal(again.embeddings, engine.embeddings)
    assert not [p for p in (tmp_path / "embeddings").iterdir() if p.name.endswith(".tmp")]


def test_embedding_cache_key_depends_on_content(encoder, tmp_path):
    a = DenseEngine(CATALOG, encoder, cache_dir=tmp_path)
    b = DenseEngine(CATALOG[::-1], encoder, cache_dir=tmp_path)
    assert a.cache_path != b.cache_path
    assert torch.allclose(a.embeddings.flip(0), b.embeddings, atol=1e-5)


@pytest.mark.parametrize("damage", ["truncate", "garbage", "wrong_metadata"])
def test_stale_or_corrupt_cache_is_rebuilt(encoder, tmp_path, caplog, damage):
    from safetensors.torch import save_file

    engine = DenseEngine(CATALOG, encoder, cache_dir=tmp_path)
    path, good = engine.cache_path, engine.embeddings.clone()
    if damage == "truncate":
        path.write_bytes(path.read_bytes()[:100])
    elif damage == "garbage":
        path.write_bytes(os.urandom(64))
    else:  # right key, but written for another catalog (e.g. an interrupted older format)
        save_file({"embeddings": torch.zeros(3, 32)}, str(path), metadata={"encoder": "other", "n": "3"})
    with caplog.at_level(logging.WARNING):
        rebuilt = DenseEngine(CATALOG, encoder, cache_dir=tmp_path)
    assert "rebuilding" in caplog.text
    assert torch.allclose(rebuilt.embeddings, good)
    assert DenseEngine(CATALOG, encoder, cache_dir=tmp_path)._load_cache() is not None  # rewritten file is good


# ---------------------------------------------------------------------------------------------------- fusion


def test_fuse_rrf_hand_computed():
    a, b = torch.tensor([1, 2, 3]), torch.tensor([3, 1, -1])
    # rrf_k = 60: item 1: 1/61 + 1/62 = 0.032522; item 3: 1/63 + 1/61 = 0.032266; item 2: 1/62 = 0.016129
    ids, scores = fuse_with_scores([a, b], k=4)
    assert ids.tolist() == [1, 3, 2, -1]
    assert scores[:3].tolist() == pytest.approx([1 / 61 + 1 / 62, 1 / 63 + 1 / 61, 1 / 62])
    # weights (1, 3): item 3: 1/63 + 3/61 = 0.065053; item 1: 1/61 + 3/62 = 0.064782; item 2: 1/62
    assert fuse([a, b], k=3, weights=[1, 3]).tolist() == [3, 1, 2]


def test_fuse_ties_break_by_first_appearance():
    # 5 and 6 both sit at rank 1 of one list: equal RRF score 1/61; 6 appears first (list 0).
    assert fuse([torch.tensor([6]), torch.tensor([5])], k=2).tolist() == [6, 5]


def test_fuse_max_hand_computed():
    lists = [torch.tensor([1, 2]), torch.tensor([2, 3])]
    scores = [torch.tensor([0.9, 0.5]), torch.tensor([0.8, 0.7])]
    # item 1: 0.9; item 2: max(0.5, 0.8) = 0.8; item 3: 0.7
    assert fuse(lists, how="max", k=3, scores=scores).tolist() == [1, 2, 3]
    # weights (0.5, 1): item 1: 0.45; item 2: max(0.25, 0.8) = 0.8; item 3: 0.7
    assert fuse(lists, how="max", k=2, scores=scores, weights=[0.5, 1.0]).tolist() == [2, 3]


def test_fuse_rejects_bad_arguments():
    with pytest.raises(ValueError, match="unknown fusion"):
        fuse([torch.tensor([1])], how="sum")
    with pytest.raises(ValueError, match="needs the retrieval scores"):
        fuse([torch.tensor([1])], how="max")
    assert fuse([], k=2).tolist() == [-1, -1]


# ---------------------------------------------------------------------------------------------- BM25, hybrid


def test_bm25_search():
    pytest.importorskip("bm25s")
    engine = BM25Engine(CATALOG)
    ids, scores = engine.search(["cordless drill", "the", "zebra"], 4)
    assert ids.shape == scores.shape == (3, 4)
    # "cordless drill" matches rows 0 (both words), 8 (cordless) and 5 (drill); row 0 first.
    assert ids[0, 0].item() == 0 and set(ids[0, :3].tolist()) == {0, 5, 8}
    assert ids[0, 3].item() == -1 and scores[0, 3] == float("-inf")
    # Only a stopword / an unseen word: no hits at all.
    assert (ids[1:] == -1).all() and torch.isinf(scores[1:]).all()


# ------------------------------------------------------------------------------------------------ real model


@pytest.mark.slow
def test_minilm_ranks_the_matching_title_first(tmp_path):
    engine = DenseEngine(CATALOG, Encoder(device="cpu"), cache_dir=tmp_path)
    ids, _ = engine.search(["cordless power drill", "kitchen tap", "sofa"], 1)
    assert ids[0, 0] == 0 and ids[1, 0] in (3, 6) and ids[2, 0] in (1, 7)
