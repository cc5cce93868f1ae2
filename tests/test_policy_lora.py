"""Hand-written LoRA: identity at init, only adapters train, merge is exact and saves as plain HF."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from policy import LoraConfig, apply_lora, completion_logprobs, load_adapter, merge_lora, save_adapter
from policy.lora import LoraLinear, lora_state_dict

IDS = torch.tensor([[5, 17, 42, 99, 3, 250, 8]])


def logits(model) -> torch.Tensor:
    with torch.no_grad():
        return model(input_ids=IDS).logits


def train_step(model, params, lr: float = 1e-2) -> None:
    optim = torch.optim.SGD(params, lr=lr)
    out = model(input_ids=IDS, labels=IDS)
    out.loss.backward()
    optim.step()
    optim.zero_grad()


def test_apply_is_identity_and_freezes_base(tiny_llama):
    before = logits(tiny_llama)
    params = apply_lora(tiny_llama, LoraConfig(r=4, alpha=8))
    assert len(params) == 2 * 7 * 2  # (A, B) x 7 projections x 2 layers
    assert all(p.requires_grad for p in params)
    trainable = {id(p) for p in tiny_llama.parameters() if p.requires_grad}
    assert trainable == {id(p) for p in params}
    torch.testing.assert_close(logits(tiny_llama), before, atol=0, rtol=0)
    assert isinstance(tiny_llama.model.layers[0].mlp.down_proj, LoraLinear)


def test_only_lora_params_change(tiny_llama):
    params = apply_lora(tiny_llama, LoraConfig(r=4, alpha=8))
    frozen = {n: p.detach().clone() for n, p in tiny_llama.named_parameters() if not p.requires_grad}
    lora = {n: p.detach().clone() for n, p in tiny_llama.named_parameters() if p.requires_grad}
    tiny_llama.train()
    train_step(tiny_llama, params)
    train_step(tiny_llama, params)  # the first step only moves B (A's grad is 0 while B == 0)
    for n, p in tiny_llama.named_parameters():
        if n in frozen:
            assert torch.equal(p, frozen[n]), n
    assert all(not torch.equal(dict(tiny_llama.named_parameters())[n], v) for n, v in lora.items())


def test_merge_is_exact_and_saves_as_plain_hf(tiny_llama, tmp_path):
    from transformers import AutoModelForCausalLM

    params = apply_lora(tiny_llama, LoraConfig(r=4, alpha=8, target_modules=("q_proj", "v_proj", "down_proj")))
    tiny_llama.train()
    for _ in range(3):
        train_step(tiny_llama, params, lr=0.5)
    tiny_llama.eval()
    adapted = logits(tiny_llama)
    state = lora_state_dict(tiny_llama)
    assert len(state) == 2 * 3 * 2 and all(k.endswith((".lora_A", ".lora_B")) for k in state)
    merge_lora(tiny_llama)
    assert not any(isinstance(m, LoraLinear) for m in tiny_llama.modules())
    assert type(tiny_llama.model.layers[1].self_attn.q_proj) is nn.Linear
    torch.testing.assert_close(logits(tiny_llama), adapted, atol=1e-5, rtol=0)
    tiny_llama.save_pretrained(tmp_path)
    reloaded = AutoModelForCausalLM.from_pretrained(tmp_path).eval()
    torch.testing.assert_close(logits(reloaded), adapted, atol=1e-5, rtol=0)


def test_adapter_file_round_trip(tiny_llama, tiny_tokenizer, tmp_path):
    from conftest import build_tiny_llama

    base_state = {k: v.clone() for k, v in tiny_llama.state_dict().items()}
    cfg = LoraConfig(r=2, alpha=4, target_modules=("q_proj", "up_proj"))
    params = apply_lora(tiny_llama, cfg)
    tiny_llama.train()
    for _ in range(3):
        train_step(tiny_llama, params, lr=0.5)
    tiny_llama.eval()
    adapted = logits(tiny_llama)
    path = save_adapter(tiny_llama, tmp_path / "adapter.safetensors", cfg)

    fresh = build_tiny_llama(tiny_tokenizer)
    fresh.load_state_dict(base_state)
    torch.testing.assert_close(logits(load_adapter(fresh.eval(), path)), adapted, atol=1e-5, rtol=0)
    assert not any(isinstance(m, LoraLinear) for m in fresh.modules())

    other = build_tiny_llama(tiny_tokenizer)
    apply_lora(other, LoraConfig(r=2, alpha=4, target_modules=("q_proj",)))
    merge_lora(other)
    with pytest.raises(ValueError, match="no LoRA layers"):
        save_adapter(other, tmp_path / "none.safetensors", cfg)
    from safetensors.torch import save_file

    save_file({"x": torch.zeros(1)}, str(tmp_path / "plain.safetensors"))
    with pytest.raises(ValueError, match="not a LESER adapter"):
        load_adapter(build_tiny_llama(tiny_tokenizer), tmp_path / "plain.safetensors")


def test_lora_gradients_through_completion_logprobs(tiny_llama):
    params = apply_lora(tiny_llama, LoraConfig(r=2, alpha=4, dropout=0.1))
    tiny_llama.train()
    completion = torch.tensor([[7, 8, 9], [10, 11, 12]])
    out = completion_logprobs(tiny_llama, [IDS[0]], completion, torch.ones(2, 3), group_size=2)
    out.sum().backward()
    assert all(p.grad is not None for p in params)
    assert all(p.grad is None for p in tiny_llama.parameters() if not p.requires_grad)


def test_bad_config_and_no_match(tiny_llama):
    with pytest.raises(ValueError):
        LoraConfig(r=0)
    with pytest.raises(ValueError, match="no nn.Linear"):
        apply_lora(tiny_llama, LoraConfig(target_modules=("nope",)))


def test_peft_loads_our_adapter_and_its_logits_match_our_merged_model(tiny_llama, tiny_tokenizer, tmp_path):
    peft = pytest.importorskip("peft")
    from conftest import build_tiny_llama
    from safetensors import safe_open

    base_dir = tmp_path / "base"
    build_tiny_llama(tiny_tokenizer).save_pretrained(base_dir)
    from transformers import AutoModelForCausalLM

    ours = AutoModelForCausalLM.from_pretrained(base_dir).eval()
    cfg = LoraConfig(r=2, alpha=6, dropout=0.1, target_modules=("q_proj", "v_proj", "down_proj"))
    params = apply_lora(ours, cfg)
    ours.train()
    for _ in range(3):
        train_step(ours, params, lr=0.5)
    ours.eval()
    save_adapter(ours, tmp_path / "ckpt" / "adapter.safetensors", cfg)
    expected = logits(merge_lora(ours))
    assert not torch.allclose(expected, logits(AutoModelForCausalLM.from_pretrained(base_dir)), atol=1e-3)

    base = AutoModelForCausalLM.from_pretrained(base_dir)
    loaded = peft.PeftModel.from_pretrained(base, tmp_path / "ckpt" / "peft").eval()
    torch.testing.assert_close(logits(loaded), expected, atol=1e-5, rtol=0)
    assert loaded.peft_config["default"].lora_alpha == 6 and loaded.peft_config["default"].r == 2
    assert loaded.peft_config["default"].base_model_name_or_path == str(base_dir)

    # The same file names, key names and shapes as PEFT's own save_pretrained for the same LoRA.
    reference = peft.get_peft_model(AutoModelForCausalLM.from_pretrained(base_dir), peft.LoraConfig(
        r=2, lora_alpha=6, target_modules=list(cfg.target_modules), task_type="CAUSAL_LM"))
    reference.save_pretrained(tmp_path / "reference")

    def shapes(folder):
        with safe_open(str(folder / "adapter_model.safetensors"), framework="pt") as f:
            return {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}

    assert shapes(tmp_path / "ckpt" / "peft") == shapes(tmp_path / "reference")
