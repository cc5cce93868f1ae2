"""A/B in one process, alternating step by step: the LM head + log-softmax fused (fused_head_trial.patch applied,
the head an ``nn.Linear``) against unfused (the head's class swapped for a subclass, which takes the old path).
From the repository root with the patch applied (it ran at 609ae0e, whose trainer kept freed memory; here the
``--heap-only-malloc`` switch does the same):

    PYTHONPATH=src python experiments/runs/2026-11-28_bench_grpo_malloc/ab_fused_head.py bf16 --heap-only-malloc
"""
import resource
import sys
import tempfile

from torch import nn

from grpo.host import heap_only_malloc, use_cores
from grpo.trainer import GRPOTrainer, PhaseTimer
from leser.config import load_config
from leser.runtime import build_reward
from leser.queries import trainable_queries
from policy import load_policy

use_cores()
if "--heap-only-malloc" in sys.argv:
    heap_only_malloc()
precision = sys.argv[1]
cfg = load_config("experiments/configs/cpu.toml", [
    "train.beta=0.04", "train.num_iterations=1", "train.max_completion_length=32", "train.num_prompts_per_step=4",
    "train.num_generations=8", f'train.precision="{precision}"'])
reward = build_reward(cfg)
qids = trainable_queries(cfg, reward.dataset, "train")[:48]
model, tokenizer = load_policy(cfg.policy.model, dtype="float32")
Unfused = type("UnfusedLinear", (nn.Linear,), {})
with tempfile.TemporaryDirectory() as tmp:
    cfg.train.output_dir = tmp
    trainer = GRPOTrainer(cfg.train, model, tokenizer, reward, cfg.prompt, qids, [], lora_cfg=cfg.lora)
    for step in range(10):
        fused = step % 2 == 0
        model.lm_head.__class__ = nn.Linear if fused else Unfused
        timer = PhaseTimer()
        batch = trainer.rollout_with_dynamic_sampling(timer)
        faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        trainer.update(batch, timer)
        faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults
        print(precision, "fused" if fused else "unfused", {k: round(v, 2) for k, v in timer.seconds.items()},
              "page faults", faults, flush=True)
