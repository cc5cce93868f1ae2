"""Shared-prompt attention and group sequences: the masks' meaning, that sampling and scoring take them, and the
fallbacks."""
from __future__ import annotations

import pytest
import torch
from transformers import AttentionInterface

import policy.logprobs as logprobs_module
import policy.shared_prompt as shared
from policy import completion_logprobs, naive_completion_logprobs, sample_groups
from policy.shared_prompt import (
    NAME, group_sequences, group_sequences_supported, shared_prompt_attention, shared_prompt_mask,
)

QUERIES = ["small couch", "cordless drill with battery and charger for the garage", "led"]


@pytest.fixture
def prompts(tiny_tokenizer):
    return [tiny_tokenizer.apply_chat_template([{"role": "user", "content": q}], tokenize=False,
                                               add_generation_prompt=True) for q in QUERIES]


@pytest.fixture
def packed_calls():
    """Counts attention calls that took the packed branch (keys with fewer rows than the queries)."""
    calls = []

    def counting(module, query, key, *args, **kwargs):
        if key.shape[0] != query.shape[0]:
            calls.append(query.shape)
        return shared._attention(module, query, key, *args, **kwargs)

    AttentionInterface.register(NAME, counting)
    yield calls
    AttentionInterface.register(NAME, shared._attention)


def test_mask_lets_a_row_see_its_prompt_and_its_own_past_only():
    prompt_mask = torch.tensor([[0, 1, 1], [1, 1, 1]])  # group 0 has one pad
    G, per_kv, slots, start, q = 2, 2, 3, 1, 2
    mask = shared_prompt_mask(prompt_mask, G, per_kv, slots, start, q)
    assert mask.shape == (2, 1, G * per_kv * q, 3 + G * slots)
    for g in range(2):
        for r in range(G):
            for j in range(per_kv):
                for i in range(q):
                    row = mask[g, 0, (r * per_kv + j) * q + i]
                    expected = prompt_mask[g].bool().tolist() + [
                        r2 == r and s <= start + i for r2 in range(G) for s in range(slots)]
                    assert row.tolist() == expected


def test_group_sequence_mask_lets_a_completion_see_its_prompt_and_its_own_past_only():
    prompts = [torch.tensor([5, 6]), torch.tensor([7, 8, 9])]  # the first is left-padded by one
    G, T = 2, 3
    completions = torch.arange(100, 100 + 2 * G * T).reshape(2 * G, T)
    ids, positions, mask = group_sequences(prompts, completions, G, pad_id=0)
    P, L = 3, 3 + G * T
    assert ids.shape == positions.shape == (2, L) and mask.shape == (2, 1, L, L)
    assert ids[0].tolist() == [0, 5, 6] + completions[:G].flatten().tolist()
    assert positions[0].tolist() == [0, 0, 1] + [2, 3, 4] * G  # each completion continues its prompt
    assert positions[1].tolist() == [0, 1, 2] + [3, 4, 5] * G
    real = [[False, True, True], [True, True, True]]
    for g in range(2):
        for i in range(L):
            for j in range(L):
                if i < P:  # a prompt token: the real prompt up to itself (a pad: itself only)
                    expected = (real[g][j] and j <= i) if j < P and real[g][i] else i == j
                else:
                    row, t = divmod(i - P, T)
                    expected = real[g][j] if j < P else (j - P) // T == row and (j - P) % T <= t
                assert bool(mask[g, 0, i, j]) == expected, (g, i, j)


def test_group_sequences_need_sdpa_full_attention_and_a_modest_key_ratio(tiny_llama):
    assert group_sequences_supported(tiny_llama, 8, 200, 32)
    assert not group_sequences_supported(tiny_llama, 1, 200, 32)  # no prompt to share
    assert not group_sequences_supported(tiny_llama, 16, 10, 64)  # 16 x 64 keys per query against 74
    tiny_llama.config.sliding_window = 16
    assert not group_sequences_supported(tiny_llama, 8, 200, 32)
    tiny_llama.config.sliding_window = None
    tiny_llama.set_attn_implementation("eager")
    assert not group_sequences_supported(tiny_llama, 8, 200, 32)


def test_sampling_and_scoring_take_the_shared_path_and_match_the_references(
        tiny_llama, tiny_tokenizer, prompts, packed_calls, monkeypatch):
    assert tiny_llama.config.num_attention_heads > tiny_llama.config.num_key_value_heads  # grouped-query heads
    r = sample_groups(tiny_llama, tiny_tokenizer, prompts, 3, max_new_tokens=8, temperature=1.0,
                      generator=torch.Generator().manual_seed(0))
    assert packed_calls, "sampling did not use the shared-prompt attention"
    scored = []
    group_sequence_hidden = logprobs_module._group_sequence_hidden
    monkeypatch.setattr(logprobs_module, "_group_sequence_hidden",
                        lambda *args: scored.append(1) or group_sequence_hidden(*args))
    with torch.no_grad():
        fast = completion_logprobs(tiny_llama, r.prompt_ids, r.completion_ids, r.completion_mask, 3)
        naive = naive_completion_logprobs(tiny_llama, r.prompt_ids, r.completion_ids, r.completion_mask, 3)
    assert scored, "scoring did not run each group as one sequence"
    torch.testing.assert_close(fast, naive, atol=1e-5, rtol=0)
    torch.testing.assert_close(r.sample_logprobs, naive, atol=1e-5, rtol=0)
    assert tiny_llama.config._attn_implementation == "sdpa"  # switched back after each pass


def test_other_attention_implementations_keep_the_repeated_layout(tiny_llama, tiny_tokenizer, prompts, packed_calls,
                                                                  monkeypatch):
    tiny_llama.set_attn_implementation("eager")
    monkeypatch.setattr(logprobs_module, "_group_sequence_hidden", None)  # scoring falls back to concatenation
    r = sample_groups(tiny_llama, tiny_tokenizer, prompts, 2, max_new_tokens=5, temperature=1.0,
                      generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        fast = completion_logprobs(tiny_llama, r.prompt_ids, r.completion_ids, r.completion_mask, 2)
        naive = naive_completion_logprobs(tiny_llama, r.prompt_ids, r.completion_ids, r.completion_mask, 2)
    assert not packed_calls
    torch.testing.assert_close(fast, naive, atol=1e-5, rtol=0)


def test_the_attention_setting_is_restored_after_an_error(tiny_llama):
    with pytest.raises(RuntimeError), shared_prompt_attention(tiny_llama):
        assert tiny_llama.config._attn_implementation == NAME
        raise RuntimeError("boom")
    assert tiny_llama.config._attn_implementation == "sdpa"


def reference_attention(query, prompt_k, prompt_v, prompt_mask, comp_k, comp_v, start, per_kv):
    """Row by row and head by head, float64: row b of group g = b // G attends to g's real prompt tokens and to
    its own completion keys up to its query's time. ``[B, q, H, d]``."""
    rows, heads, q, d = query.shape
    group = rows // prompt_k.shape[0]
    out = torch.zeros(rows, q, heads, d, dtype=torch.float64)
    for b in range(rows):
        g = b // group
        for h in range(heads):
            k = torch.cat([prompt_k[g, h // per_kv], comp_k[b, h // per_kv]]).double()
            v = torch.cat([prompt_v[g, h // per_kv], comp_v[b, h // per_kv]]).double()
            for i in range(q):
                seen = torch.cat([prompt_mask[g].bool(), torch.arange(comp_k.shape[2]) <= start + i])
                scores = (k @ query[b, h, i].double()) / d ** 0.5
                weights = torch.softmax(scores.masked_fill(~seen, float("-inf")), -1)
                out[b, i, h] = weights @ v
    return out


@pytest.mark.parametrize("one_token_at_a_time", [False, True])
def test_packed_attention_equals_row_by_row_attention(one_token_at_a_time):
    """Large random scores (far from uniform), grouped-query heads, a padded prompt; all slots at once (the scorer)
    or one token per call (decoding)."""
    g = torch.Generator().manual_seed(0)
    n, G, kv, per_kv, P, S, d = 2, 3, 2, 3, 4, 3, 8
    prompt_k, prompt_v = (3 * torch.randn(n, kv, P, d, generator=g) for _ in range(2))
    comp_k, comp_v = (3 * torch.randn(n * G, kv, S, d, generator=g) for _ in range(2))
    query = 3 * torch.randn(n * G, kv * per_kv, S, d, generator=g)
    prompt_mask = torch.tensor([[0, 1, 1, 1], [1, 1, 1, 1]])
    layer = shared.SharedPromptLayer(prompt_k, prompt_v, G, S)
    steps = [(t, 1) for t in range(S)] if one_token_at_a_time else [(0, S)]
    for start, q in steps:
        keys, values = layer.update(comp_k[:, :, start:start + q], comp_v[:, :, start:start + q])
        mask = shared_prompt_mask(prompt_mask, G, per_kv, S, start, q)
        out, _ = shared._attention(None, query[:, :, start:start + q], keys, values, mask, scaling=d ** -0.5)
        expected = reference_attention(query[:, :, start:start + q], prompt_k, prompt_v, prompt_mask, comp_k, comp_v,
                                       start, per_kv)
        torch.testing.assert_close(out.double(), expected, atol=1e-5, rtol=1e-5)
