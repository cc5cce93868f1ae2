"""Group sampling: shared-prompt decoding, masks, EOS/truncation, greedy."""
from __future__ import annotations

import pytest
import torch

from policy import Rollout, naive_completion_logprobs, sample_groups
from policy.sampling import _draw, resolve_eos_ids, sample_next, top_p_filter

QUERIES = ["small couch", "cordless drill with battery and charger for the garage", "led"]


def chat(tokenizer, query: str) -> str:
    return tokenizer.apply_chat_template([{"role": "user", "content": query}], tokenize=False,
                                         add_generation_prompt=True)


@pytest.fixture
def prompts(tiny_tokenizer):
    return [chat(tiny_tokenizer, q) for q in QUERIES]


def bias_token(model, token_id: int, bias: float):
    """Add ``bias`` to one vocabulary logit at every position; returns the hook handle."""
    def hook(_module, _inputs, output):
        output[..., token_id] += bias
        return output

    return model.lm_head.register_forward_hook(hook)


def reference_group_sampling(model, prompt_ids, group_size, max_new_tokens, temperature, top_p, generator, eos_id):
    """Unshared reference: the prompt repeated G times, full forward (no cache) at every step.

    Draws from the RNG exactly like ``sample_groups(groups_per_batch=1)``: one uniform number per row of
    ``[G, V]`` per step, stopping when every row has emitted EOS.
    """
    seqs = prompt_ids.unsqueeze(0).repeat(group_size, 1)  # [G, P]
    finished = torch.zeros(group_size, dtype=torch.bool)
    out = []
    for _ in range(max_new_tokens):
        with torch.no_grad():
            logits = model(input_ids=seqs).logits[:, -1]
        tokens, _ = sample_next(logits, temperature, top_p, generator)
        out.append(tokens)
        finished |= tokens == eos_id
        if finished.all():
            break
        seqs = torch.cat([seqs, tokens.unsqueeze(-1)], dim=1)
    return torch.stack(out, 1)  # [G, T]


@pytest.mark.parametrize(("temperature", "top_p"), [(1.0, 1.0), (0.7, 0.9)])
def test_shared_prompt_matches_unshared_reference(tiny_llama, tiny_tokenizer, prompts, temperature, top_p):
    group_size, max_new = 4, 10
    handle = bias_token(tiny_llama, tiny_tokenizer.eos_token_id, 3.5)  # some rows stop early
    rollout = sample_groups(tiny_llama, tiny_tokenizer, prompts, group_size, max_new_tokens=max_new,
                            temperature=temperature, top_p=top_p, generator=torch.Generator().manual_seed(7),
                            groups_per_batch=1)
    generator = torch.Generator().manual_seed(7)
    for g, prompt_ids in enumerate(rollout.prompt_ids):
        ref = reference_group_sampling(tiny_llama, prompt_ids, group_size, max_new, temperature, top_p, generator,
                                       tiny_tokenizer.eos_token_id)
        rows = slice(g * group_size, (g + 1) * group_size)
        mask = rollout.completion_mask[rows, : ref.shape[1]].bool()
        got = rollout.completion_ids[rows, : ref.shape[1]]
        assert torch.equal(got[mask], ref[mask])
    handle.remove()


@pytest.mark.parametrize("groups_per_batch", [1, 2, None])
def test_sample_logprobs_match_full_forward(tiny_llama, tiny_tokenizer, prompts, groups_per_batch):
    """Batched groups (left-padded prompts of different lengths) score exactly like a naive forward."""
    handle = bias_token(tiny_llama, tiny_tokenizer.eos_token_id, 3.0)
    rollout = sample_groups(tiny_llama, tiny_tokenizer, prompts, 3, max_new_tokens=12, temperature=0.8,
                            top_p=0.95, generator=torch.Generator().manual_seed(1),
                            groups_per_batch=groups_per_batch)
    with torch.no_grad():
        ref = naive_completion_logprobs(tiny_llama, rollout.prompt_ids, rollout.completion_ids,
                                        rollout.completion_mask, 3, temperature=0.8)
    handle.remove()
    torch.testing.assert_close(rollout.sample_logprobs, ref, atol=1e-5, rtol=0)


def test_eos_masking_and_padding(tiny_llama, tiny_tokenizer, prompts):
    eos, pad = tiny_tokenizer.eos_token_id, tiny_tokenizer.pad_token_id
    handle = bias_token(tiny_llama, eos, 4.0)
    r = sample_groups(tiny_llama, tiny_tokenizer, prompts, 8, max_new_tokens=16,
                      generator=torch.Generator().manual_seed(3))
    handle.remove()
    assert isinstance(r, Rollout) and r.completion_ids.shape == r.completion_mask.shape == r.sample_logprobs.shape
    assert r.completion_ids.shape[0] == 24 and r.num_groups == 3 and r.group_index(23) == 2
    for b in range(r.batch_size):
        row, mask = r.completion_ids[b], r.completion_mask[b].bool()
        eos_at = (row == eos).nonzero().flatten()
        if r.truncated[b]:
            assert eos_at.numel() == 0 and mask.all() and row.numel() == 16
        else:
            first = int(eos_at[0])
            assert mask[: first + 1].all() and not mask[first + 1:].any()  # EOS itself is kept
            assert (row[first + 1:] == pad).all()
        assert (r.sample_logprobs[b][~mask] == 0).all() and (r.sample_logprobs[b][mask] < 0).all()
        assert "<|im_end|>" not in r.texts[b]
    assert not r.truncated.all() and r.completion_lengths().min() < 16


def test_stops_when_all_rows_hit_eos(tiny_llama, tiny_tokenizer, prompts):
    handle = bias_token(tiny_llama, tiny_tokenizer.eos_token_id, 100.0)
    r = sample_groups(tiny_llama, tiny_tokenizer, prompts, 4, max_new_tokens=20)
    handle.remove()
    assert r.completion_ids.shape == (12, 1) and r.completion_mask.all() and not r.truncated.any()
    assert r.texts == [""] * 12


def test_truncated_flag(tiny_llama, tiny_tokenizer, prompts):
    handle = bias_token(tiny_llama, tiny_tokenizer.eos_token_id, -1e4)
    r = sample_groups(tiny_llama, tiny_tokenizer, prompts[:2], 3, max_new_tokens=5,
                      generator=torch.Generator().manual_seed(0))
    handle.remove()
    assert r.completion_ids.shape == (6, 5) and r.truncated.all() and r.completion_mask.all()


def test_greedy_is_deterministic_and_top_p_tiny_is_greedy(tiny_llama, tiny_tokenizer, prompts):
    a = sample_groups(tiny_llama, tiny_tokenizer, prompts, 3, max_new_tokens=8, temperature=0.0)
    b = sample_groups(tiny_llama, tiny_tokenizer, prompts, 3, max_new_tokens=8, temperature=0.0, groups_per_batch=1)
    assert torch.equal(a.completion_ids, b.completion_ids)
    assert all(torch.equal(a.completion_ids[g * 3], a.completion_ids[g * 3 + i]) for g in range(3) for i in range(3))
    c = sample_groups(tiny_llama, tiny_tokenizer, prompts, 3, max_new_tokens=8, temperature=1.0, top_p=1e-6,
                      generator=torch.Generator().manual_seed(0))
    assert torch.equal(a.completion_ids, c.completion_ids)
    with torch.no_grad():  # greedy log-probs are recorded at temperature 1
        ref = naive_completion_logprobs(tiny_llama, a.prompt_ids, a.completion_ids, a.completion_mask, 3, 1.0)
    torch.testing.assert_close(a.sample_logprobs, ref, atol=1e-5, rtol=0)


def test_outputs_are_usable_with_autograd(tiny_llama, tiny_tokenizer, prompts):
    """Tensors built under inference_mode must not leak into the training graph as inference tensors."""
    r = sample_groups(tiny_llama, tiny_tokenizer, prompts[:1], 2, max_new_tokens=4,
                      generator=torch.Generator().manual_seed(0))
    assert not any(t.is_inference() for t in (r.completion_ids, r.completion_mask, r.sample_logprobs))
    logits = tiny_llama(input_ids=r.completion_ids).logits
    logits.sum().backward()


def test_top_p_filter_keeps_nucleus():
    probs = torch.tensor([[0.5, 0.3, 0.15, 0.05]])
    assert torch.equal(top_p_filter(probs, 0.7) > 0, torch.tensor([[True, True, False, False]]))
    assert torch.equal(top_p_filter(probs, 0.81) > 0, torch.tensor([[True, True, True, False]]))
    assert torch.equal(top_p_filter(probs, 1.0), probs)


def test_eos_ids_include_generation_config(tiny_llama, tiny_tokenizer):
    tiny_llama.generation_config.eos_token_id = [5, tiny_tokenizer.eos_token_id]
    assert resolve_eos_ids(tiny_llama, tiny_tokenizer) == [tiny_tokenizer.eos_token_id, 5]
    assert resolve_eos_ids(tiny_llama, tiny_tokenizer, [9, 9]) == [9]


def test_invalid_arguments(tiny_llama, tiny_tokenizer, prompts):
    with pytest.raises(ValueError):
        sample_groups(tiny_llama, tiny_tokenizer, [], 2)
    with pytest.raises(ValueError):
        sample_groups(tiny_llama, tiny_tokenizer, prompts, 0)
    with pytest.raises(ValueError):
        sample_groups(tiny_llama, tiny_tokenizer, prompts, 2, top_p=0.0)


def test_per_group_generators_make_a_groups_samples_independent_of_its_batch(tiny_llama, tiny_tokenizer, prompts):
    from grpo.schedule import group_generators

    together = sample_groups(tiny_llama, tiny_tokenizer, prompts, 4, max_new_tokens=6,
                             generator=group_generators(0, 5, 0, 0, 3))
    alone = [sample_groups(tiny_llama, tiny_tokenizer, [p], 4, max_new_tokens=6,
                           generator=group_generators(0, 5, 0, i, 1)) for i, p in enumerate(prompts)]
    assert together.texts == sum((a.texts for a in alone), [])
    other_step = sample_groups(tiny_llama, tiny_tokenizer, prompts, 4, max_new_tokens=6,
                               generator=group_generators(0, 6, 0, 0, 3))
    assert other_step.texts != together.texts  # the step is part of the seed
    with pytest.raises(ValueError, match="2 generators for 3 prompts"):
        sample_groups(tiny_llama, tiny_tokenizer, prompts, 4, generator=group_generators(0, 0, 0, 0, 2))


def test_inverse_cdf_draw_follows_the_distribution_and_never_picks_zero_mass():
    probs = torch.tensor([[0.0, 0.5, 0.0, 0.3, 0.2, 0.0], [2.0, 0.0, 0.0, 0.0, 0.0, 6.0]])  # row 2 unnormalised
    generator = torch.Generator().manual_seed(0)
    draws = torch.stack([_draw(probs, generator) for _ in range(20000)])  # [n, 2]
    for row, expected in ((0, {1: 0.5, 3: 0.3, 4: 0.2}), (1, {0: 0.25, 5: 0.75})):
        counts = torch.bincount(draws[:, row], minlength=6).double() / len(draws)
        assert set(counts.nonzero().flatten().tolist()) == set(expected)  # zero mass is never drawn
        for token, p in expected.items():
            assert abs(counts[token] - p) < 0.015  # 20k draws: 3 standard errors are below 0.01
    # The same generator state gives the same tokens: one uniform per row.
    assert torch.equal(_draw(probs, torch.Generator().manual_seed(5)), _draw(probs, torch.Generator().manual_seed(5)))


def test_a_draw_that_rounds_up_to_the_total_takes_the_last_token_with_mass(monkeypatch):
    probs = torch.tensor([[0.2, 0.8, 0.0, 0.0]])
    monkeypatch.setattr(torch, "rand", lambda *a, **k: torch.ones(1, 1))  # u * total == total
    assert _draw(probs, None).tolist() == [1]


def test_a_draw_from_no_valid_distribution_is_an_error():
    with pytest.raises(ValueError, match="not finite or has no mass"):
        _draw(torch.tensor([[0.5, float("nan"), 0.5]]), torch.Generator().manual_seed(0))
    with pytest.raises(ValueError, match="not finite or has no mass"):
        _draw(torch.zeros(1, 3), torch.Generator().manual_seed(0))
