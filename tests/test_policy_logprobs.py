"""completion_logprobs (shared prompt KV, logits only at completion positions) vs the naive reference."""
from __future__ import annotations

import pytest
import torch

import policy.logprobs as logprobs_module
from policy import completion_logprobs, naive_completion_logprobs, sample_groups

G = 3
QUERIES = [
    "small couch",
    "cordless drill with battery and charger for the garage",
    "led light bulb 60 watt soft white kitchen",
]


@pytest.fixture
def rollout(tiny_llama, tiny_tokenizer):
    """Prompts of different lengths; EOS is made likely so completions are padded to different lengths."""
    prompts = [tiny_tokenizer.apply_chat_template([{"role": "user", "content": q}], tokenize=False,
                                                  add_generation_prompt=True) for q in QUERIES]
    def eos_bias(_module, _inputs, output):
        output[..., tiny_tokenizer.eos_token_id] += 3.0
        return output

    handle = tiny_llama.lm_head.register_forward_hook(eos_bias)
    r = sample_groups(tiny_llama, tiny_tokenizer, prompts, G, max_new_tokens=12, temperature=0.7,
                      generator=torch.Generator().manual_seed(0))
    handle.remove()
    assert len({p.numel() for p in r.prompt_ids}) == 3 and r.completion_lengths().unique().numel() > 1
    return r


def call(fn, model, r, **kw):
    return fn(model, r.prompt_ids, r.completion_ids, r.completion_mask, G, **kw)


def grads_of(model, fn, r, **kw):
    model.zero_grad(set_to_none=True)
    out = call(fn, model, r, **kw)
    (out * r.completion_mask).sum().backward()
    return out.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


def unpadded_reference(model, r, temperature):
    """Row by row, no padding at all: validates the padding/position handling of both implementations."""
    rows = []
    for b in range(r.batch_size):
        prompt = r.prompt_ids[b // G]
        ids = torch.cat([prompt, r.completion_ids[b]]).unsqueeze(0)
        logits = model(input_ids=ids).logits[0, prompt.numel() - 1: -1] / temperature
        rows.append(torch.log_softmax(logits, -1).gather(-1, r.completion_ids[b, :, None]).squeeze(-1))
    return torch.stack(rows) * r.completion_mask


@pytest.mark.parametrize("temperature", [1.0, 0.7])
def test_matches_naive_and_unpadded(tiny_llama, rollout, temperature):
    with torch.no_grad():
        fast = call(completion_logprobs, tiny_llama, rollout, temperature=temperature)
        naive = call(naive_completion_logprobs, tiny_llama, rollout, temperature=temperature)
        ref = unpadded_reference(tiny_llama, rollout, temperature)
    torch.testing.assert_close(fast, naive, atol=1e-5, rtol=0)
    torch.testing.assert_close(naive, ref, atol=1e-5, rtol=0)
    assert (fast[rollout.completion_mask == 0] == 0).all()


def test_matches_sampling_logprobs(tiny_llama, tiny_tokenizer, rollout):
    # The fixture sampled with an EOS bias; re-sample without it so model and sampler agree.
    prompts = [tiny_tokenizer.decode(p) for p in rollout.prompt_ids]
    r = sample_groups(tiny_llama, tiny_tokenizer, prompts, G, max_new_tokens=10, temperature=0.7,
                      generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        scored = call(completion_logprobs, tiny_llama, r, temperature=0.7)
    torch.testing.assert_close(scored, r.sample_logprobs, atol=1e-5, rtol=0)


def test_gradients_match_naive(tiny_llama, rollout):
    """Equal gradients also prove that gradient flows through the shared (repeated) prompt KV cache:
    were the cache detached, every weight would miss the prompt positions' contribution."""
    tiny_llama.train()  # dropout is 0 in the tiny config; train mode exercises the training path
    fast, g_fast = grads_of(tiny_llama, completion_logprobs, rollout, temperature=0.7)
    naive, g_naive = grads_of(tiny_llama, naive_completion_logprobs, rollout, temperature=0.7)
    torch.testing.assert_close(fast, naive, atol=1e-5, rtol=0)
    assert g_fast.keys() == g_naive.keys() and len(g_fast) > 0
    for name in g_naive:
        torch.testing.assert_close(g_fast[name], g_naive[name], atol=1e-5, rtol=0, msg=name)


def enable_checkpointing(model) -> None:
    enable = getattr(model, "activation_checkpointing_enable", None) or model.gradient_checkpointing_enable
    enable()


def test_gradient_checkpointing_keeps_the_shared_prompt(tiny_llama, rollout, monkeypatch):
    """Group sequences need no KV cache, so checkpointed layers still run each prompt once (and exactly)."""
    tiny_llama.train()
    _, g_naive = grads_of(tiny_llama, naive_completion_logprobs, rollout)
    enable_checkpointing(tiny_llama)

    def concatenated_path_forbidden(*_args, **_kwargs):
        raise AssertionError("the concatenated path was used under gradient checkpointing")

    monkeypatch.setattr(logprobs_module, "_concat_hidden", concatenated_path_forbidden)
    out, g_ckpt = grads_of(tiny_llama, completion_logprobs, rollout)
    with torch.no_grad():
        torch.testing.assert_close(out, call(naive_completion_logprobs, tiny_llama, rollout), atol=1e-5, rtol=0)
    for name in g_naive:
        torch.testing.assert_close(g_ckpt[name], g_naive[name], atol=1e-5, rtol=0, msg=name)


def test_micro_batches_and_inference_mode(tiny_llama, rollout):
    with torch.inference_mode():
        whole = call(completion_logprobs, tiny_llama, rollout)
        micro = call(completion_logprobs, tiny_llama, rollout, micro_batch_groups=2)
        naive_micro = call(naive_completion_logprobs, tiny_llama, rollout, micro_batch_groups=1)
    torch.testing.assert_close(whole, micro, atol=1e-6, rtol=0)
    torch.testing.assert_close(whole, naive_micro, atol=1e-5, rtol=0)


def test_shape_validation(tiny_llama, rollout):
    with pytest.raises(ValueError, match="n_groups"):
        completion_logprobs(tiny_llama, rollout.prompt_ids[:2], rollout.completion_ids,
                            rollout.completion_mask, G)
    with pytest.raises(ValueError, match=r"\[B, T\]"):
        completion_logprobs(tiny_llama, rollout.prompt_ids, rollout.completion_ids,
                            rollout.completion_mask[:, :-1], G)


def test_entropy_matches_full_softmax(tiny_llama, rollout):
    with torch.no_grad():
        logprobs, entropy = call(completion_logprobs, tiny_llama, rollout, temperature=0.7, return_entropy=True)
        expected = []
        for b in range(rollout.batch_size):
            prompt = rollout.prompt_ids[b // G]
            ids = torch.cat([prompt, rollout.completion_ids[b]]).unsqueeze(0)
            logits = tiny_llama(input_ids=ids).logits[0, prompt.numel() - 1: -1]
            dist = torch.distributions.Categorical(logits=logits / 0.7)
            expected.append(dist.entropy())
    expected = torch.stack(expected) * rollout.completion_mask
    torch.testing.assert_close(entropy, expected, atol=1e-5, rtol=0)
    torch.testing.assert_close(logprobs, call(completion_logprobs, tiny_llama, rollout, temperature=0.7))


@pytest.mark.parametrize("rows_per_slice", [1, 2])
def test_logit_slices_match_naive(tiny_llama, rollout, monkeypatch, rows_per_slice):
    """The fp32 normalisation runs on row slices of the logits: values, entropy and gradients are unchanged."""
    tiny_llama.train()
    naive, g_naive = grads_of(tiny_llama, naive_completion_logprobs, rollout, temperature=0.7)
    with torch.no_grad():
        _, entropy_whole = call(completion_logprobs, tiny_llama, rollout, temperature=0.7, return_entropy=True)
    row_elements = rollout.completion_ids.shape[1] * tiny_llama.config.vocab_size
    monkeypatch.setattr(logprobs_module, "LOGIT_CHUNK_ELEMENTS", rows_per_slice * row_elements)
    sliced, g_sliced = grads_of(tiny_llama, completion_logprobs, rollout, temperature=0.7)
    with torch.no_grad():
        _, entropy_sliced = call(completion_logprobs, tiny_llama, rollout, temperature=0.7, return_entropy=True)
    torch.testing.assert_close(sliced, naive, atol=1e-5, rtol=0)
    torch.testing.assert_close(entropy_sliced, entropy_whole, atol=1e-6, rtol=0)
    for name in g_naive:
        torch.testing.assert_close(g_sliced[name], g_naive[name], atol=1e-5, rtol=0, msg=name)
