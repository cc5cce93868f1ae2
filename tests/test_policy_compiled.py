"""Regional compilation of the decoder layers: the same log-probs and gradients as eager, one graph for every layer
and prompt length, and eager decoding."""
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
    with pytest.raises(RuntimeError, match="needs a C\\+\\+ compiler"):
        compile_decoder_layers(build_tiny_llama(tiny_tokenizer))
