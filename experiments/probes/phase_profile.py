"""Where a GRPO step's time goes, phase by phase: ``make bench``'s step under ``torch.profiler``.

Runs ``--steps`` ordinary steps of the bench's config (4 prompts x G 8, 32 new tokens, beta 0.04, mu 1), printing
each one's phase times, then one more step with the profiler on inside the phases named by ``--phases``
(``generate``, ``reference``, ``update``), and prints each phase's operators by self CPU time, overall and by
input shape.

    python experiments/probes/phase_profile.py --precision bf16 --phases generate update > profile.txt

Each step's line also gives the process's minor page faults in it. ``--phases none`` times the steps only;
``--heap-only-malloc`` has glibc serve everything from its heap (``grpo.host.heap_only_malloc``). Under the
profiler, element-wise ops can take several times longer than unprofiled (its buffers churn the heap); time the
phases without it.
"""
from __future__ import annotations

import argparse
import contextlib
import resource
import tempfile
import time

from torch.profiler import ProfilerActivity, profile

from grpo.host import heap_only_malloc, use_cores
from grpo.trainer import GRPOTrainer, PhaseTimer
from leser.config import load_config
from leser.runtime import build_reward
from leser.queries import trainable_queries
from policy import load_policy

BENCH_SETTINGS = ["train.beta=0.04", "train.num_iterations=1", "train.max_completion_length=32",
                  "train.num_prompts_per_step=4", "train.num_generations=8"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="experiments/configs/cpu.toml")
    parser.add_argument("--precision", default="bf16", choices=["fp32", "bf16"])
    parser.add_argument("--phases", nargs="+", default=["generate", "reference", "update"])
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--rows", type=int, default=18, help="operators listed per table")
    parser.add_argument("--heap-only-malloc", action="store_true", help="call grpo.host.heap_only_malloc() first")
    args = parser.parse_args()
    use_cores()
    if args.heap_only_malloc:
        heap_only_malloc()
    cfg = load_config(args.config, BENCH_SETTINGS + [f'train.precision="{args.precision}"'])
    reward = build_reward(cfg)
    qids = trainable_queries(cfg, reward.dataset, "train")[: cfg.train.num_prompts_per_step * (args.steps + 1)]
    model, tokenizer = load_policy(cfg.policy.model, dtype="float32")

    profiles, profiling = {}, False
    phase = PhaseTimer.__call__

    @contextlib.contextmanager
    def profiled_phase(timer, name):
        with phase(timer, name):
            if profiling and name in args.phases:
                with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
                    yield
                profiles[name] = prof
            else:
                yield

    PhaseTimer.__call__ = profiled_phase
    with tempfile.TemporaryDirectory() as tmp:
        cfg.train.output_dir = tmp
        trainer = GRPOTrainer(cfg.train, model, tokenizer, reward, cfg.prompt, qids, [], lora_cfg=cfg.lora)
        for step in range(args.steps + 1):
            profiling = step == args.steps
            timer, start, faults = PhaseTimer(), time.perf_counter(), resource.getrusage(resource.RUSAGE_SELF).ru_minflt
            trainer.update(trainer.rollout_with_dynamic_sampling(timer), timer)
            shown = {k: round(v, 2) for k, v in timer.seconds.items()}
            faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults
            print(f"{args.precision} step {step}{' (profiled)' if profiling else ''}: "
                  f"{time.perf_counter() - start:.1f} s {shown}, {faults} page faults", flush=True)
    for name, prof in profiles.items():
        print(f"\n===== {name}\n{prof.key_averages().table(sort_by='self_cpu_time_total', row_limit=args.rows)}")
        print(prof.key_averages(group_by_input_shape=True).table(sort_by="self_cpu_time_total", row_limit=args.rows))


if __name__ == "__main__":
    main()
