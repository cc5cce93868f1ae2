"""train.precision = "bf16": autocast for the scored passes, a bf16 copy for sampling, fp32 weights and loss;
"auto": bf16 where the device runs it natively, else fp32, recorded as resolved."""
from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from grpo.config import GRPOConfig
import grpo.host
from grpo.host import use_cores
from grpo.logs import PhaseTimer
import policy.precision
from policy.precision import SamplingCopy, autocast, frozen_copy, resolve_precision
from test_grpo_trainer import LetterReward, make_trainer, small_config


def bf16_kernels(monkeypatch, native: bool) -> None:
    """Mock the CPU's one bf16 check (oneDNN's kernels), which both ``auto`` and the emulation warning read."""
    monkeypatch.setattr(policy.precision, "cpu_has_bf16_kernels", lambda: native)


def test_precision_is_checked_in_one_line():
    with pytest.raises(ValueError, match=r"precision must be one of \('auto', 'fp32', 'bf16'\), got 'fp16'"):
        GRPOConfig(precision="fp16")
    with pytest.raises(ValueError, match="precision must be one of"):
        autocast("half", "cpu")


def test_bf16_on_a_cpu_without_bf16_kernels_warns_in_one_line(monkeypatch):
    import warnings

    from grpo.distill import DistillConfig

    bf16_kernels(monkeypatch, False)
    policy.precision._warn_emulated_bf16.cache_clear()
    with pytest.warns(UserWarning, match=r'emulated there, many times slower than fp32.*set precision = "fp32"'):
        with autocast("bf16", "cpu"):
            pass
    with warnings.catch_warnings():  # once a process, not at every step
        warnings.simplefilter("error")
        with autocast("bf16", "cpu"):
            pass
    policy.precision._warn_emulated_bf16.cache_clear()
    with warnings.catch_warnings():  # validating a config computes nothing, so it does not warn
        warnings.simplefilter("error")
        DistillConfig(precision="bf16")
    bf16_kernels(monkeypatch, True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with autocast("bf16", "cpu"), autocast("fp32", "cpu"):
            pass


@pytest.mark.parametrize("native, chosen", [(True, "bf16"), (False, "fp32")])
def test_auto_takes_bf16_where_the_cpu_has_its_kernels_and_says_why_in_one_line(monkeypatch, capsys, native,
                                                                                chosen):
    bf16_kernels(monkeypatch, native)
    assert resolve_precision("auto", "cpu", "train.precision") == chosen
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f'train.precision = "auto": {chosen} (oneDNN has')
    assert ("emulated" in lines[0]) == (not native)
    assert resolve_precision("auto", "cpu", log=False) == chosen and not capsys.readouterr().err


def test_an_explicit_precision_stays_as_set_even_where_bf16_is_emulated(monkeypatch, capsys):
    bf16_kernels(monkeypatch, False)
    assert resolve_precision("bf16", "cpu") == "bf16" and resolve_precision("fp32", "cpu") == "fp32"
    assert not capsys.readouterr().err  # nothing chosen, nothing said; autocast warns of the emulation
    with pytest.raises(ValueError, match=r"precision must be one of \('auto', 'fp32', 'bf16'\), got 'half'"):
        resolve_precision("half", "cpu")


@pytest.mark.parametrize("supported, chosen", [(True, "bf16"), (False, "fp32")])
def test_auto_on_cuda_asks_the_gpu_not_the_cpu(monkeypatch, capsys, supported, chosen):
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: supported)
    bf16_kernels(monkeypatch, not supported)  # the CPU's answer is the other one: it must not be read
    assert resolve_precision("auto", torch.device("cuda", 0), "train.precision") == chosen
    assert capsys.readouterr().err.startswith(f'train.precision = "auto": {chosen} (CUDA ')


@pytest.mark.parametrize("native, chosen", [(True, "bf16"), (False, "fp32")])
def test_the_run_config_records_what_auto_became(tmp_path, tiny_tokenizer, tiny_llama, monkeypatch, native,
                                                 chosen):
    from dataclasses import asdict

    bf16_kernels(monkeypatch, native)
    cfg = small_config(tmp_path, precision="auto")
    asked = {"train": asdict(cfg), "policy": {"dtype": "float32"}}
    trainer = make_trainer(cfg, tiny_tokenizer, tiny_llama, run_config=asked)
    assert trainer.cfg.precision == chosen and (trainer.ref_model.lm_head.weight.dtype == torch.bfloat16) == native
    assert cfg.precision == "auto" and asked["train"]["precision"] == "auto"  # the caller's objects are left alone
    trainer.start(resume=False, overwrite=False).close()
    recorded = json.loads((tmp_path / "run" / "config.json").read_text())
    assert recorded["train"]["precision"] == chosen and recorded["policy"] == {"dtype": "float32"}
    assert make_trainer(small_config(tmp_path, precision="auto"), tiny_tokenizer,
                        tiny_llama).run_config["train"]["precision"] == chosen  # the default record too


def test_distill_records_what_auto_became(tmp_path, tiny_tokenizer, tiny_llama, monkeypatch):
    from grpo.distill import DistillConfig, distill
    from policy import PromptConfig

    bf16_kernels(monkeypatch, True)
    cfg = DistillConfig(output_dir=str(tmp_path / "distill"), num_queries=2, num_samples=2, epochs=1, batch_size=2,
                        max_completion_length=4, min_reward=-1.0, precision="auto")
    prompt_cfg = PromptConfig(context_k=2, max_prompt_tokens=256, system_prompt="Rewrite the query.")
    summary = distill(tiny_llama, tiny_tokenizer, LetterReward(), prompt_cfg, ["q0", "q1"], cfg,
                      run_config={"distill": {"precision": "auto"}})
    written = json.loads((tmp_path / "distill" / "distill.json").read_text())
    assert summary["config"]["precision"] == written["config"]["precision"] == "bf16"
    assert written["run_config"]["distill"]["precision"] == "bf16"


def test_bf16_scores_close_to_fp32_with_ratio_one_and_zero_kl_on_the_first_pass(tmp_path, tiny_tokenizer,
                                                                              tiny_llama):
    trainer = make_trainer(small_config(tmp_path, precision="bf16", micro_batch_groups=2), tiny_tokenizer, tiny_llama)
    batch = trainer.rollout(trainer.sampler.take(2), PhaseTimer())
    rows = slice(0, len(batch.loss_mask))
    with torch.no_grad():
        bf16 = trainer.logprobs(trainer.scorer, batch, 0, 2, rows)
        trainer.cfg.precision = "fp32"
        fp32 = trainer.logprobs(trainer.scorer, batch, 0, 2, rows)
        trainer.cfg.precision = "bf16"
    assert bf16.dtype == torch.float32  # log-softmax in fp32 whatever the matrix products ran in
    assert not torch.equal(bf16, fp32)  # bf16 really ran
    torch.testing.assert_close(bf16, fp32, atol=0.05, rtol=0)
    stats, skipped = trainer.update(batch, PhaseTimer())
    assert skipped is None
    assert stats["kl"] == 0.0  # the reference pass and the first policy pass are the same bf16 computation
    assert stats["clip_ratio/low"] == stats["clip_ratio/high"] == 0.0  # ratio exactly 1 on the first pass
    assert all(p.dtype == torch.float32 for p in trainer.model.parameters())  # master weights stay fp32


def test_the_sampling_copy_follows_the_master_weights(tiny_llama):
    sampler = SamplingCopy(tiny_llama, "bf16")
    copy = sampler.model()
    linear = [m.weight for m in copy.modules() if isinstance(m, torch.nn.Linear)]
    assert linear and all(w.dtype == torch.bfloat16 for w in linear)
    # Embeddings, norms and buffers (the rotary frequencies) stay fp32: the residual stream is the scorer's.
    others = {id(w) for w in linear}
    assert all(p.dtype == torch.float32 for p in copy.parameters() if id(p) not in others)
    assert copy.get_input_embeddings().weight.dtype == torch.float32
    assert all(b.dtype == torch.float32 for b in copy.buffers() if b.is_floating_point())
    with torch.no_grad():
        tiny_llama.lm_head.weight.add_(1.0)
        tiny_llama.model.norm.weight.add_(0.5)
    copy = sampler.model()
    torch.testing.assert_close(copy.lm_head.weight.float(), tiny_llama.lm_head.weight, atol=0.02, rtol=0.01)
    torch.testing.assert_close(copy.model.norm.weight, tiny_llama.model.norm.weight)
    assert SamplingCopy(tiny_llama, "fp32").model() is tiny_llama


def test_the_sampling_copy_under_autocast_scores_as_the_autocast_policy(tiny_llama):
    """The sampler's next-token distribution is the one the loss scores: same bf16 products, fp32 rest."""
    ids = torch.randint(0, tiny_llama.config.vocab_size, (2, 12), generator=torch.Generator().manual_seed(0))
    sampler = SamplingCopy(tiny_llama, "bf16")
    with torch.no_grad(), autocast("bf16", "cpu"):
        scored = tiny_llama(ids).logits.float().log_softmax(-1)
        sampled = sampler.model()(ids).logits.float().log_softmax(-1)
    torch.testing.assert_close(sampled, scored, atol=1e-5, rtol=1e-5)


def test_the_bf16_reference_copy_scores_as_the_autocast_policy(tiny_llama):
    """The frozen reference stores bf16 matrix weights: exactly what autocast casts the fp32 ones to."""
    ids = torch.randint(0, tiny_llama.config.vocab_size, (2, 12), generator=torch.Generator().manual_seed(1))
    reference = frozen_copy(tiny_llama, "bf16")
    assert reference.lm_head.weight.dtype == torch.bfloat16 and not reference.lm_head.weight.requires_grad
    assert reference.model.embed_tokens.weight.dtype == torch.float32
    with torch.no_grad(), autocast("bf16", "cpu"):
        torch.testing.assert_close(reference(ids).logits, tiny_llama(ids).logits, atol=0, rtol=0)
    assert frozen_copy(tiny_llama, "fp32").lm_head.weight.dtype == torch.float32


def test_host_settings():
    assert use_cores(1000) == 1 == torch.get_num_threads()  # a thousand processes on this host: one core each
    assert use_cores(1) == torch.get_num_threads() >= 1


HEAP_ONLY_CHECK = """
import resource, torch
from grpo.host import heap_only_malloc
assert heap_only_malloc()
pages = (64 << 20) // resource.getpagesize()
faults = []
for _ in range(6):  # the heap grows to the block's size within the first rounds
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    torch.ones(pages * resource.getpagesize() // 4)
    faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
print(min(faults[2:]), pages)
"""


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc's malloc only")
def test_heap_only_malloc_reuses_freed_pages():
    """glibc maps a 64 MB block fresh and unmaps it on free (16,384 page faults every time) unless told otherwise;
    told, a later round reuses pages already mapped. In a child process: the setting is process-wide and slows
    long-lived processes."""
    src = str(Path(grpo.host.__file__).parents[1])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([src, os.environ.get("PYTHONPATH", "")])}
    out = subprocess.run([sys.executable, "-c", HEAP_ONLY_CHECK], capture_output=True, text=True, check=True, env=env)
    faults, pages = map(int, out.stdout.split())
    assert faults < pages // 10
