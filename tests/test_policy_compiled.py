"""Regional compilation of the decoder layers: the same log-probs and gradients as eager, one graph for every layer
and prompt length; decoding stays eager unless asked, and compiled decoding samples what eager decoding does."""
from __future__ import annotations

import shutil

import pytest
import torch
from torch._dynamo.utils import counters

from conftest import build_tiny_llama
from policy import completion_logprobs, sample_groups
from policy.compiled import CXX, compile_decoder_layers, decoder_layers

needs_compiler = pytest.mark.skipif(not any(shutil.which(c) for c in CXX),
                                    reason="torch.compile on CPU needs a C++ compiler")
G = 3


def prompts_of(tokenizer, queries):
    return [tokenizer.apply_chat_template([{"role": "user", "content": q}], tokenize=False, add_generation_prompt=True)
            for q in queries]


def scored(model, rollout):
    model.zero_grad(set_to_none=True)
    out = completion_logprobs(model, rollout.prompt_ids, rollout.completion_ids, rollout.completion_mask, G)
    out.sum().backward()
    return out.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


@needs_compiler
def test_compiled_layers_score_like_eager_with_one_graph_and_decode_eagerly(tiny_tokenizer):
    eager_model, compiled_model = build_tiny_llama(tiny_tokenizer), build_tiny_llama(tiny_tokenizer)
    assert compile_decoder_layers(compiled_model) == len(decoder_layers(eager_model)) == 2
    torch._dynamo.reset()
    counters.clear()
    for queries in (["small couch", "led"], ["cordless drill with battery and charger for the garage", "tile"]):
        prompts = prompts_of(tiny_tokenizer, queries)
        graphs = counters["stats"]["unique_graphs"]
        samples = [sample_groups(m, tiny_tokenizer, prompts, G, max_new_tokens=6, temperature=1.0,
                                 generator=torch.Generator().manual_seed(0)) for m in (eager_model, compiled_model)]
        assert torch.equal(samples[0].completion_ids, samples[1].completion_ids)
        assert counters["stats"]["unique_graphs"] == graphs  # decoding compiled nothing
        (want, want_grads), (got, got_grads) = scored(eager_model, samples[0]), scored(compiled_model, samples[0])
        torch.testing.assert_close(got, want, atol=1e-5, rtol=0)
        assert got_grads.keys() == want_grads.keys()
        for name in want_grads:
            torch.testing.assert_close(got_grads[name], want_grads[name], atol=1e-5, rtol=1e-4, msg=name)
    # One graph (forward and backward) shared by both layers and both prompt lengths.
    assert counters["stats"]["unique_graphs"] == 1


def test_a_model_without_declared_layers_is_refused():
    with pytest.raises(ValueError, match="no decoder layers"):
        compile_decoder_layers(torch.nn.Sequential(torch.nn.Linear(2, 2)))


def test_no_cpu_compiler_is_a_clear_error(tiny_tokenizer, monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda _name: None)
    model = build_tiny_llama(tiny_tokenizer)
    with pytest.raises(RuntimeError, match="needs a C\\+\\+ compiler"):
        compile_decoder_layers(model)
    with pytest.raises(RuntimeError, match="needs a C\\+\\+ compiler"):  # before the first decoded token
        sample_groups(model, tiny_tokenizer, prompts_of(tiny_tokenizer, ["led"]), G, max_new_tokens=4, compiled=True)


def rollouts(model, tokenizer, prompts, compiled, temperature):
    return sample_groups(model, tokenizer, prompts, G, max_new_tokens=6, temperature=temperature,
                         generator=[torch.Generator().manual_seed(i) for i in range(len(prompts))], compiled=compiled)


@needs_compiler
@pytest.mark.parametrize("layers_compiled_for_scoring", [False, True])
def test_compiled_decoding_samples_like_eager_with_one_graph(tiny_tokenizer, layers_compiled_for_scoring):
    model = build_tiny_llama(tiny_tokenizer)
    if layers_compiled_for_scoring:  # the trainer's fp32 case: the policy decodes itself
        compile_decoder_layers(model)
    torch._dynamo.reset()
    counters.clear()
    for queries in (["small couch", "led"], ["cordless drill with battery and charger for the garage", "tile"]):
        prompts = prompts_of(tiny_tokenizer, queries)
        for temperature in (0.0, 1.0):
            want, got = (rollouts(model, tiny_tokenizer, prompts, c, temperature) for c in (False, True))
            assert torch.equal(got.completion_ids, want.completion_ids)
            assert torch.equal(got.completion_mask, want.completion_mask)
            torch.testing.assert_close(got.sample_logprobs, want.sample_logprobs, atol=1e-5, rtol=0)
    # One graph for both layers, every decoded token and both prompt lengths.
    assert counters["stats"]["unique_graphs"] == 1


@needs_compiler
def test_compiled_decoding_falls_back_to_eager_where_the_prompt_is_not_shared(tiny_tokenizer):
    model = build_tiny_llama(tiny_tokenizer)
    model.config._attn_implementation = "eager"  # the shared-prompt layout needs sdpa
    prompts = prompts_of(tiny_tokenizer, ["small couch", "led"])
    torch._dynamo.reset()
    counters.clear()
    want, got = (rollouts(model, tiny_tokenizer, prompts, c, 1.0) for c in (False, True))
    assert torch.equal(got.completion_ids, want.completion_ids)
    assert counters["stats"]["unique_graphs"] == 0
