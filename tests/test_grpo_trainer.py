"""Smoke tests of the GRPO loop: a tiny random Llama learns a toy reward; checkpoints resume exactly."""
from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from grpo.checkpoint import checkpoint_dirs
from grpo.config import GRPOConfig
from grpo.batch import QuerySampler
from grpo.checkpoint import TrainingState
from grpo.schedule import warmup_cosine
from grpo.trainer import GRPOTrainer
from policy import PromptConfig
from reward import RewardParts

TARGET = "e"


class LetterReward:
    """A toy environment: the reward is the share of the letter 'e' in the expansions' text.

    It has the interface the trainer uses (``dataset.queries``, ``context``, ``score``) and no engine.
    """

    def __init__(self):
        self.dataset = SimpleNamespace(queries={f"q{i}": f"drill {i}" for i in range(8)})

    def context(self, qids, k):
        return [["cordless drill", "drill bits"][:k] for _ in qids]

    def score(self, qids, expansions):
        text = [" ".join(e) for e in expansions]
        share = torch.tensor([t.count(TARGET) / max(len(t), 1) for t in text])
        zeros = torch.zeros(len(qids))
        return RewardParts(share, zeros, zeros, zeros, share, [[] for _ in qids], expansions)


def small_config(tmp_path, **overrides) -> GRPOConfig:
    values = dict(
        output_dir=str(tmp_path / "run"), max_steps=3, num_prompts_per_step=2, num_generations=4,
        max_completion_length=8, learning_rate=3e-3, warmup_steps=0, beta=0.04, micro_batch_groups=1,
        eval_queries=2, save_steps=2, log_completions_steps=1,
    )
    values.update(overrides)
    return GRPOConfig(**values)


def make_trainer(cfg, tokenizer, model, **kw):
    return GRPOTrainer(cfg, model, tokenizer, LetterReward(), PromptConfig(context_k=2, max_prompt_tokens=256, system_prompt="Rewrite the query."),
                       train_qids=[f"q{i}" for i in range(6)], valid_qids=["q6", "q7"], **kw)


def test_tiny_llama_learns_toy_reward_and_every_parameter_moves(tmp_path, tiny_tokenizer, tiny_llama):
    torch.manual_seed(0)
    before = {n: p.detach().clone() for n, p in tiny_llama.named_parameters()}
    cfg = small_config(tmp_path, max_steps=12, num_generations=8, learning_rate=5e-2)
    trainer = make_trainer(cfg, tiny_tokenizer, tiny_llama)
    rewards = []
    original_rollout = trainer.rollout

    def recording_rollout(qids, timer, *args):
        batch = original_rollout(qids, timer, *args)
        rewards.append(batch.parts.total.mean().item())
        return batch

    trainer.rollout = recording_rollout
    trainer.train()
    first, last = sum(rewards[:3]) / 3, sum(rewards[-3:]) / 3
    assert last > first + 0.04, rewards
    unchanged = [n for n, p in tiny_llama.named_parameters() if torch.equal(p, before[n])]
    assert not unchanged, unchanged
    assert trainer.ref_model is not None
    for n, p in trainer.ref_model.named_parameters():
        assert torch.equal(p, before[n]), "the reference model must stay frozen"


def test_lora_training_changes_only_adapters_and_exports_plain_weights(tmp_path, tiny_tokenizer, tiny_llama):
    from transformers import AutoModelForCausalLM

    cfg = small_config(tmp_path, max_steps=2, use_lora=True, beta=0.0)
    trainer = make_trainer(cfg, tiny_tokenizer, tiny_llama)
    assert trainer.ref_model is None  # beta 0: no reference model at all
    trainer.train()
    ckpt = checkpoint_dirs(cfg.output_dir)[-1]
    reloaded = AutoModelForCausalLM.from_pretrained(ckpt)
    ids = torch.tensor([[1, 5, 9, 12]])
    with torch.no_grad():
        assert torch.allclose(reloaded(ids).logits, trainer.model(ids).logits, atol=1e-5)
    # the adapter file alone, applied to the untouched base, gives the same policy
    from conftest import build_tiny_llama
    from policy import load_adapter

    base = load_adapter(build_tiny_llama(tiny_tokenizer).eval(), ckpt / "adapter.safetensors")
    with torch.no_grad():
        assert torch.allclose(base(ids).logits, reloaded(ids).logits, atol=1e-5)
    # beside it, the same adapter in PEFT's format (in peft/: from_pretrained(ckpt) must not apply it twice)
    assert json.loads((ckpt / "peft" / "adapter_config.json").read_text())["peft_type"] == "LORA"
    assert (ckpt / "peft" / "adapter_model.safetensors").is_file() and not (ckpt / "adapter_config.json").exists()
    card = (ckpt / "README.md").read_text()
    assert "**Steps:** 2 of 2 (LoRA" in card and "| valid/reward/total@start |" in card and "PeftModel" in card


def test_max_time_stops_and_saves(tmp_path, tiny_tokenizer, tiny_llama):
    cfg = small_config(tmp_path, max_steps=50, save_steps=100, max_time_s=0.0)
    trainer = make_trainer(cfg, tiny_tokenizer, tiny_llama)
    result = trainer.train()
    assert trainer.state.step == 1
    assert [p.name for p in checkpoint_dirs(cfg.output_dir)] == ["checkpoint-1"]
    assert "valid/reward/total@end" in result
    # The result file is traceable: the commit, the date and the run's resolved config.
    written = json.loads((Path(cfg.output_dir) / "result.json").read_text())
    assert written["commit"] and written["date"] and written["config"]["train"]["max_steps"] == 50
    assert json.loads((Path(cfg.output_dir) / "checkpoint-1" / "leser_settings.json").read_text()) == {}


def crash_in_step_3(trainer) -> None:
    """Train until step 3's update, which raises as a killed process would stop (after checkpoint-2)."""
    real_update = trainer.update

    def update_then_crash(batch, timer):
        if trainer.state.step == 2:
            raise KeyboardInterrupt
        return real_update(batch, timer)

    trainer.update = update_then_crash
    with pytest.raises(KeyboardInterrupt):
        trainer.train()


def test_checkpoint_resume_continues_the_same_run(tmp_path, tiny_tokenizer):
    from conftest import build_tiny_llama

    # One uninterrupted run of 4 steps ...
    full = make_trainer(small_config(tmp_path / "a", max_steps=4, save_steps=2), tiny_tokenizer,
                        build_tiny_llama(tiny_tokenizer))
    full.train()
    # ... equals a run that crashes in step 3 and is resumed from its step-2 checkpoint in a new trainer.
    cfg = small_config(tmp_path / "b", max_steps=4, save_steps=2)
    crash_in_step_3(make_trainer(cfg, tiny_tokenizer, build_tiny_llama(tiny_tokenizer)))
    assert [p.name for p in checkpoint_dirs(cfg.output_dir)] == ["checkpoint-2"]

    resumed = make_trainer(cfg, tiny_tokenizer, build_tiny_llama(tiny_tokenizer))
    resumed.train(resume=True)
    assert resumed.state.step == 4
    for (n, p), (_, q) in zip(full.model.named_parameters(), resumed.model.named_parameters()):
        assert torch.allclose(p, q, atol=1e-6), n
    assert [p.name for p in checkpoint_dirs(cfg.output_dir)] == ["checkpoint-2", "checkpoint-4"]
    state = json.loads((checkpoint_dirs(cfg.output_dir)[-1] / "training_state.json").read_text())
    assert state["state"]["step"] == 4


def test_resume_with_a_longer_horizon_follows_the_new_schedule_and_keeps_the_old_config(
    tmp_path, tiny_tokenizer, capsys
):
    from conftest import build_tiny_llama

    cfg = small_config(tmp_path, max_steps=2, save_steps=2, warmup_steps=1)
    make_trainer(cfg, tiny_tokenizer, build_tiny_llama(tiny_tokenizer), run_config={"max_steps": 2}).train()
    state = json.loads((checkpoint_dirs(cfg.output_dir)[-1] / "training_state.json").read_text())
    assert state["state"]["max_steps"] == 2

    longer = small_config(tmp_path, max_steps=6, save_steps=2, warmup_steps=1)
    resumed = make_trainer(longer, tiny_tokenizer, build_tiny_llama(tiny_tokenizer), run_config={"max_steps": 6})
    seen_lrs = []
    real_update = resumed.update

    def record_lr_then_update(batch, timer):
        seen_lrs.append(resumed.optimizer.param_groups[0]["lr"])
        return real_update(batch, timer)

    resumed.update = record_lr_then_update
    resumed.train(resume=True)
    assert "max_steps 2 -> 6" in capsys.readouterr().out
    # Step 3 (the first after the resume) already runs at the 6-step schedule's rate, not the 2-step one's floor.
    assert seen_lrs[0] == pytest.approx(longer.learning_rate * warmup_cosine(2, 1, 6, longer.min_lr_ratio))
    assert seen_lrs[0] > longer.learning_rate * warmup_cosine(2, 1, 2, longer.min_lr_ratio)
    run_dir = tmp_path / "run"
    assert json.loads((run_dir / "config.until-step-2.json").read_text()) == {"max_steps": 2}
    assert json.loads((run_dir / "config.json").read_text()) == {"max_steps": 6}


def test_tensorboard_tags(tmp_path, tiny_tokenizer, tiny_llama):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    cfg = small_config(tmp_path, max_steps=1, num_iterations=2, dynamic_sampling=True)
    make_trainer(cfg, tiny_tokenizer, tiny_llama).train()
    acc = EventAccumulator(str(tmp_path / "run" / "tb"))
    acc.Reload()
    tags = set(acc.Tags()["scalars"])
    for tag in ("reward/total/mean", "reward/relevance/mean", "reward/coverage/std", "frac_reward_zero_std",
                "train/kl", "train/entropy", "train/clip_ratio/low", "train/clip_ratio/high", "train/grad_norm",
                "train/learning_rate", "completions/mean_length", "completions/truncated_fraction",
                "rules/violation_rate", "time/generate_s", "time/reward_s", "time/reference_s",
                "time/update_s", "time/tokens_per_s", "valid/reward/total",
                "valid/reward_sampled/total"):
        assert tag in tags, tag


def test_sampler_is_seeded_and_resumable():
    a = QuerySampler(["a", "b", "c"], seed=1, state=TrainingState())
    first = a.take(5)
    state = TrainingState(**json.loads(json.dumps(a.state.__dict__)))
    b = QuerySampler(["a", "b", "c"], seed=1, state=state)
    assert b.take(4) == a.take(4)
    assert sorted(first[:3]) == ["a", "b", "c"]


def test_warmup_cosine_schedule():
    assert warmup_cosine(0, 2, 10, 0.1) == pytest.approx(1 / 3)
    assert warmup_cosine(2, 2, 10, 0.1) == pytest.approx(1.0)
    assert warmup_cosine(10, 2, 10, 0.1) == pytest.approx(0.1)


def test_config_rejects_bad_options():
    with pytest.raises(ValueError, match="loss_type"):
        GRPOConfig(loss_type="ppo")
    with pytest.raises(ValueError, match="num_generations"):
        GRPOConfig(num_generations=1)
    with pytest.raises(ValueError, match="optim"):
        GRPOConfig(optim="sgd")


def test_fused_and_looped_adamw_take_the_same_step_and_share_a_state_format(tiny_tokenizer):
    from conftest import build_tiny_llama

    from grpo.schedule import adamw

    models = [build_tiny_llama(tiny_tokenizer) for _ in range(2)]  # the same weights: the same seed
    optimizers = [adamw(list(m.parameters()), optim, 1e-2, (0.9, 0.99), 0.01)
                  for m, optim in zip(models, ("adamw_torch", "adamw_torch_fused"))]
    assert optimizers[1].defaults["fused"] and not optimizers[0].defaults["fused"]
    for step in range(3):
        for m, opt in zip(models, optimizers):
            torch.manual_seed(step)
            for p in m.parameters():
                p.grad = torch.randn_like(p)
            opt.step()
    initial = build_tiny_llama(tiny_tokenizer)
    for p, q, p0 in zip(models[0].parameters(), models[1].parameters(), initial.parameters()):
        assert torch.allclose(p, q, atol=1e-6) and not torch.equal(p, p0)


def test_a_run_resumes_with_the_configured_optimizer_whichever_wrote_the_checkpoint(tmp_path, tiny_tokenizer):
    from conftest import build_tiny_llama

    looped = small_config(tmp_path, max_steps=2, save_steps=2, optim="adamw_torch")
    make_trainer(looped, tiny_tokenizer, build_tiny_llama(tiny_tokenizer)).train()
    fused = small_config(tmp_path, max_steps=3, save_steps=2, optim="adamw_torch_fused")
    resumed = make_trainer(fused, tiny_tokenizer, build_tiny_llama(tiny_tokenizer))
    resumed.train(resume=True)
    assert resumed.state.step == 3 and resumed.optimizer.param_groups[0]["fused"] is True


def test_multiple_iterations_use_the_sampling_policy_as_old(tmp_path, tiny_tokenizer, tiny_llama, monkeypatch):
    import grpo.update as trainer_module
    from grpo.trainer import PhaseTimer

    trainer = make_trainer(small_config(tmp_path, num_iterations=3, micro_batch_groups=1), tiny_tokenizer, tiny_llama)
    batch = trainer.rollout(trainer.sampler.take(2), PhaseTimer())
    expected_old = trainer.frozen_logprobs(trainer.scorer, batch)  # before any update
    seen = []
    real_loss = trainer_module.grpo_loss

    def recording_loss(logprobs, old, *args, **kwargs):
        seen.append(old.detach().clone())
        return real_loss(logprobs, old, *args, **kwargs)

    monkeypatch.setattr(trainer_module, "grpo_loss", recording_loss)
    trainer.update(batch, PhaseTimer())
    assert len(seen) == 3 * 2  # 3 passes x 2 micro-batches
    for i, old in enumerate(seen):
        rows = slice(0, 4) if i % 2 == 0 else slice(4, 8)
        torch.testing.assert_close(old, expected_old[rows], atol=1e-5, rtol=0)


def test_a_compiled_run_resumes_exactly(tmp_path, tiny_tokenizer):
    """train.torch_compile: the compiled scoring passes are deterministic, so kill + resume is still exact."""
    import shutil

    from conftest import build_tiny_llama
    from policy.compiled import CXX

    if not any(shutil.which(c) for c in CXX):
        pytest.skip("torch.compile on CPU needs a C++ compiler")
    full = make_trainer(small_config(tmp_path / "a", max_steps=3, save_steps=2, torch_compile=True), tiny_tokenizer,
                        build_tiny_llama(tiny_tokenizer))
    full.train()
    cfg = small_config(tmp_path / "b", max_steps=3, save_steps=2, torch_compile=True)
    crash_in_step_3(make_trainer(cfg, tiny_tokenizer, build_tiny_llama(tiny_tokenizer)))
    resumed = make_trainer(cfg, tiny_tokenizer, build_tiny_llama(tiny_tokenizer))
    resumed.train(resume=True)
    for (n, p), (_, q) in zip(full.model.named_parameters(), resumed.model.named_parameters()):
        assert torch.equal(p, q), n
