"""The preallocated decoding cache equals transformers' concatenating DynamicLayer, and writes in place."""
from __future__ import annotations

import torch
from transformers import DynamicCache
from transformers.cache_utils import DynamicLayer

from policy.kv_cache import PreallocatedLayer, reserve_decoding_room


def kv(batch: int, length: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(batch, 2, length, 4, generator=g), torch.randn(batch, 2, length, 4, generator=g)


def test_updates_equal_dynamic_layer_through_growth_and_batch_repeat():
    plain = DynamicLayer()
    plain.update(*kv(2, 5, 0))
    mine = PreallocatedLayer(plain.keys.clone(), plain.values.clone(), extra=2)
    steps = [kv(2, 1, 1), kv(2, 1, 2), kv(2, 3, 3), "repeat", kv(6, 1, 4), kv(6, 2, 5)]  # 3 tokens overflow room 2
    for step in steps:
        if step == "repeat":
            plain.batch_repeat_interleave(3)
            mine.batch_repeat_interleave(3)
            continue
        expected, got = plain.update(*step), mine.update(*step)
        for e, g in zip(expected, got):
            assert torch.equal(e, g)
        assert mine.get_seq_length() == plain.get_seq_length()


def test_writes_in_place_while_there_is_room():
    mine = PreallocatedLayer(*kv(1, 3, 0), extra=4)
    start = mine.keys.data_ptr()
    for seed in range(4):
        mine.update(*kv(1, 1, seed + 1))
        assert mine.keys.data_ptr() == start and mine.keys.shape[-2] == 4 + seed


def test_reserve_swaps_only_filled_plain_layers():
    cache = DynamicCache()
    cache.update(*kv(1, 3, 0), layer_idx=0)
    cache.layers.append(DynamicLayer())  # never filled: left alone
    reserve_decoding_room(cache, 8)
    assert isinstance(cache.layers[0], PreallocatedLayer) and type(cache.layers[1]) is DynamicLayer
    keys, _ = cache.update(*kv(1, 1, 1), layer_idx=0)
    assert keys.shape == (1, 2, 4, 4) and cache.get_seq_length() == 4
