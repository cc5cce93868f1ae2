"""The GPU path: sampling, log-probs, the trainer and the dense engine on CUDA.

Skipped where no CUDA device is present (CI has none); run them on a GPU machine with
``python -m pytest tests/test_cuda.py``.
"""
from __future__ import annotations

import pytest
import torch

from conftest import build_tiny_llama
from grpo.checkpoint import checkpoint_dirs
from policy import completion_logprobs, naive_completion_logprobs, sample_groups
from test_grpo_trainer import make_trainer, small_config
from test_retrieval_engine import CATALOG, save_tiny_bert

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")

PROMPTS = ["<|im_start|>user\nsmall couch<|im_end|>\n<|im_start|>assistant\n",
           "<|im_start|>user\ncordless drill with battery<|im_end|>\n<|im_start|>assistant\n"]
G = 4


def cuda_llama(tokenizer):
    return build_tiny_llama(tokenizer).cuda()


def test_sampling_and_logprobs_agree_on_cuda(tiny_tokenizer):
    model = cuda_llama(tiny_tokenizer)
    r = sample_groups(model, tiny_tokenizer, PROMPTS, G, max_new_tokens=10, temperature=0.7,
                      generator=torch.Generator("cuda").manual_seed(0))
    assert r.completion_ids.is_cuda and r.completion_ids.shape[0] == len(PROMPTS) * G
    args = (model, r.prompt_ids, r.completion_ids, r.completion_mask, G)
    with torch.inference_mode():
        fast = completion_logprobs(*args, temperature=0.7)
        naive = naive_completion_logprobs(*args, temperature=0.7)
    torch.testing.assert_close(fast, r.sample_logprobs, atol=1e-4, rtol=0)
    torch.testing.assert_close(fast, naive, atol=1e-4, rtol=0)


def test_compiled_decoding_samples_like_eager_on_cuda(tiny_tokenizer):
    model = cuda_llama(tiny_tokenizer)
    want, got = (sample_groups(model, tiny_tokenizer, PROMPTS, G, max_new_tokens=8, temperature=0.0, compiled=c)
                 for c in (False, True))
    assert torch.equal(got.completion_ids, want.completion_ids)
    torch.testing.assert_close(got.sample_logprobs, want.sample_logprobs, atol=1e-4, rtol=0)


def test_cpu_generator_drives_a_cuda_model(tiny_tokenizer):
    model = cuda_llama(tiny_tokenizer)
    runs = [sample_groups(model, tiny_tokenizer, PROMPTS, G, max_new_tokens=6, temperature=1.0,
                          generator=torch.Generator().manual_seed(3)) for _ in range(2)]
    assert runs[0].completion_ids.is_cuda
    assert torch.equal(runs[0].completion_ids, runs[1].completion_ids)


@pytest.mark.parametrize("use_lora,dtype", [(False, torch.float32), (True, torch.float32), (False, torch.bfloat16)])
def test_trainer_steps_on_cuda(tmp_path, tiny_tokenizer, use_lora, dtype):
    from transformers import AutoModelForCausalLM

    model = cuda_llama(tiny_tokenizer).to(dtype)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    cfg = small_config(tmp_path, max_steps=3, use_lora=use_lora, learning_rate=1e-2)
    trainer = make_trainer(cfg, tiny_tokenizer, model)
    result = trainer.train()
    assert trainer.generator.device.type == "cuda"
    assert all(torch.isfinite(torch.tensor(v)) for v in result.values())
    moved = [n for n, p in model.named_parameters() if n in before and not torch.equal(p, before[n])]
    assert bool(moved) != use_lora  # LoRA leaves the base weights alone
    reloaded = AutoModelForCausalLM.from_pretrained(checkpoint_dirs(cfg.output_dir)[-1], dtype=dtype).cuda()
    ids = torch.tensor([[1, 5, 9, 12]], device="cuda")
    with torch.no_grad():
        torch.testing.assert_close(reloaded(ids).logits.float(), trainer.model(ids).logits.float(),
                                   atol=1e-3 if dtype == torch.float32 else 5e-2, rtol=0)


def test_dense_engine_on_cuda_matches_cpu(tmp_path):
    from retrieval.encoder import Encoder
    from retrieval.engine import DenseEngine

    folder = save_tiny_bert(tmp_path / "bert", seed=0)
    queries = ["cordless drill", "white faucet", "blue sofa"]
    results = {}
    for device in ("cpu", "cuda"):
        engine = DenseEngine(CATALOG, Encoder(str(folder), device=device), cache_dir=tmp_path / device)
        ids, scores = engine.search(queries, 5)
        assert ids.device.type == "cpu" and scores.device.type == "cpu"
        results[device] = (ids, scores)
    assert torch.equal(results["cpu"][0], results["cuda"][0])
    torch.testing.assert_close(results["cpu"][1], results["cuda"][1], atol=1e-4, rtol=0)


def test_label_free_reward_with_engine_on_cuda(tmp_path):
    from retrieval import Dataset
    from retrieval.encoder import Encoder
    from retrieval.engine import DenseEngine
    from reward import RewardConfig, RulesConfig, SearchReward

    engine = DenseEngine(CATALOG, Encoder(str(save_tiny_bert(tmp_path / "bert", seed=0)), device="cuda"),
                         cache_dir=tmp_path)
    dataset = Dataset(name="toy", product_ids=[str(i) for i in range(len(CATALOG))], product_texts=CATALOG,
                      queries={"q": "cordless drill"}, qrels={}, relevant_gain=1.0)
    env = SearchReward(dataset, engine, RewardConfig(relevance="label_free", coverage_k=3), RulesConfig())
    parts = env.score(["q"], [["battery charger", "drill bit set"]])
    assert torch.isfinite(parts.total).all() and parts.total.device.type == "cpu"
