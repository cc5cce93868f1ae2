"""One GRPO step, ours against TRL's ``GRPOTrainer``, on identical settings, in one run on one machine.

Both trainers get: the same policy (SmolLM2-135M-Instruct converted from the wheel, fp32), the same prompts
(Home Depot train queries with the same engine context, built by ``policy.build_prompt``), G completions of at
most ``max_completion_length`` tokens, the same reward (``reward.SearchReward`` wrapped as a TRL reward
function), ``beta`` > 0, mu = 1, ``loss_type = "grpo"``, the same learning rate and temperature.

``--heap-only-malloc`` has glibc serve every allocation from its heap and keep what is freed, for both trainers
(they share this process): on a VM where a fresh page costs microseconds it shortens TRL's step far more than ours
over a few steps, but over a long run the fragmented heap makes ``malloc`` itself slow
(experiments/runs/2026-11-28_bench_grpo_malloc), so no trainer here uses it by default.

Reports the median step time after ``--warmup`` steps for each, the ratio, our per-phase breakdown and completion
tokens per second. Writes ``runs/bench/bench_grpo.json`` (``--out``); a result worth keeping goes into a run folder
under ``experiments/runs/`` (see ``experiments/RESULTS.md``).

    python experiments/bench/bench_grpo.py [--steps 3] [--warmup 2] [--scaling]

Each side runs in fp32 and in bf16 (``--precisions``): ours with ``train.precision``, TRL with ``bf16``.
``--scaling`` adds the table over G = 4, 8, 16 and context k = 0, 5, 10 in the last precision given (slow: TRL
takes minutes a step).
``--profile`` runs one more step of ours under ``torch.profiler`` and writes the operators that took the
most time (self CPU time) to ``runs/bench/profile_grpo.txt``. Run it without ``--scaling``: the
profiler's event buffers plus TRL's full-vocabulary logits once ran this 24 GiB machine out of memory.
"""
from __future__ import annotations

import argparse
import contextlib
import gc
import json
import math
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import torch

from grpo.host import heap_only_malloc, use_cores
from grpo.provenance import provenance
from grpo.trainer import GRPOTrainer, PhaseTimer
from leser.config import load_config
from leser.runtime import build_reward
from leser.queries import trainable_queries
from policy import build_prompt, load_policy, parse_completion
from policy.loading import default_policy_dir

PROFILE_OUT = "runs/bench/profile_grpo.txt"
TRL_MAX_MICRO_BATCH = 16  # default of --trl-micro-batch: at 32, TRL's fp32 step ran 24 GiB out of memory
SCALING_ROWS = ["4,5", "16,5", "8,0", "8,10"]  # G,k; the main row is G = 8, k = 5


class StepProfiler:
    """Profiles the step numbered ``step`` (None: none) and keeps its operator table."""

    def __init__(self, step: int | None, rows: int = 25):
        self.step, self.rows, self.table = step, rows, None

    @contextlib.contextmanager
    def __call__(self, i: int):
        if i != self.step:
            yield
            return
        from torch.profiler import ProfilerActivity, profile

        with profile(activities=[ProfilerActivity.CPU]) as prof:
            yield
        self.table = prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=self.rows)


def our_step_times(cfg, reward, qids, steps: int, warmup: int, profiler: StepProfiler | None = None,
                   precision: str = "fp32") -> dict:
    model, tokenizer = load_policy(cfg.policy.model, dtype="float32")
    cfg.train.precision = precision
    profiler = profiler or StepProfiler(None)
    with tempfile.TemporaryDirectory() as tmp:
        cfg.train.output_dir = tmp
        trainer = GRPOTrainer(cfg.train, model, tokenizer, reward, cfg.prompt, qids, [], lora_cfg=cfg.lora)
        times, phases, tokens, prompt_tokens = [], [], [], []
        for i in range(warmup + steps + (profiler.step is not None)):
            timer, start = PhaseTimer(), time.perf_counter()
            with profiler(i):
                batch = trainer.rollout_with_dynamic_sampling(timer)
                trainer.update(batch, timer)
            elapsed = time.perf_counter() - start
            if i == profiler.step:
                print(f"  ours step {i} (profiled): {elapsed:.1f}s")
                continue
            if i >= warmup:
                times.append(elapsed)
                phases.append(dict(timer.seconds))
                tokens.append(int(batch.rollout.completion_mask.sum()))
                prompt_tokens.extend(p.numel() for p in batch.rollout.prompt_ids)
            shown = {k: round(v, 1) for k, v in timer.seconds.items()}
            print(f"  ours {precision} step {i}: {elapsed:.1f}s {shown}")
    median = statistics.median(times)
    return {
        "median_step_s": median,
        "step_s": times,
        "phases_s": {k: statistics.median(p[k] for p in phases) for k in phases[0]},
        "completion_tokens_per_s": statistics.median(t / s for t, s in zip(tokens, times)),
        "prompt_tokens_mean": statistics.mean(prompt_tokens),
    }


def trl_step_times(cfg, reward, qids, steps: int, warmup: int, micro_batch: int = TRL_MAX_MICRO_BATCH,
                   precision: str = "fp32") -> dict:
    from datasets import Dataset as HFDataset
    from transformers import AutoTokenizer, TrainerCallback
    from trl import GRPOConfig as TRLConfig, GRPOTrainer as TRLTrainer

    model_dir = str(default_policy_dir()) if cfg.policy.model is None else cfg.policy.model
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    contexts = reward.context(qids, cfg.prompt.context_k)
    prompts = [build_prompt(tokenizer, reward.dataset.queries[q], c, cfg.prompt) for q, c in zip(qids, contexts)]
    data = HFDataset.from_dict({"prompt": prompts, "qid": qids})

    def search_reward(prompts, completions, qid, **_):
        return reward.score(list(qid), [parse_completion(c) for c in completions]).total.tolist()

    class StepClock(TrainerCallback):
        def __init__(self):
            self.times, self.tokens, self._start = [], [], None

        def on_step_begin(self, args, state, control, **kw):
            self._start = time.perf_counter()

        def on_step_end(self, args, state, control, **kw):
            self.times.append(time.perf_counter() - self._start)
            print(f"  trl step {len(self.times) - 1}: {self.times[-1]:.1f}s")

    t = cfg.train
    n_completions = t.num_prompts_per_step * t.num_generations
    # TRL scores full-vocabulary logits at every position: 64 completions in one batch ran this 24 GiB
    # machine out of memory, so larger steps are split into micro-batches (same optimiser step).
    accumulation = math.ceil(n_completions / micro_batch)
    with tempfile.TemporaryDirectory() as tmp:
        args = TRLConfig(
            output_dir=tmp, use_cpu=True, per_device_train_batch_size=n_completions // accumulation,
            gradient_accumulation_steps=accumulation, num_generations=t.num_generations,
            max_completion_length=t.max_completion_length, temperature=t.temperature, beta=t.beta,
            epsilon=t.epsilon, loss_type=t.loss_type, scale_rewards=t.scale_rewards, num_iterations=1,
            learning_rate=t.learning_rate, max_steps=warmup + steps, logging_steps=1, save_strategy="no",
            report_to="none", seed=t.seed, disable_dropout=True, shuffle_dataset=False,
            # TRL turns these on by default; ours runs without checkpointing, so TRL does too. bf16=True is
            # TRL's mixed precision (autocast through accelerate), its fastest setting on a bf16-capable CPU.
            gradient_checkpointing=False, bf16=precision == "bf16",
        )
        clock = StepClock()
        trainer = TRLTrainer(model=model_dir, reward_funcs=search_reward, args=args, train_dataset=data,
                             processing_class=tokenizer, callbacks=[clock])
        trainer.train()
    times = clock.times[warmup:]
    return {"median_step_s": statistics.median(times), "step_s": times, "gradient_accumulation_steps": accumulation}


def compare(cfg, reward, pool: list[str], steps: int, warmup: int, label: str, profile: bool = False,
            ours_only: bool = False, trl_micro_batch: int = TRL_MAX_MICRO_BATCH,
            precisions: tuple[str, ...] = ("fp32", "bf16")) -> dict:
    """Ours and TRL's in each precision, same queries; the speed-up is TRL's fastest over ours's fastest."""
    qids = pool[: cfg.train.num_prompts_per_step * (steps + warmup + profile)]
    print(f"{label}: G={cfg.train.num_generations} context_k={cfg.prompt.context_k}")
    # The profiled step comes last, so the timed steps never pay the profiler's overhead.
    profiler = StepProfiler(warmup + steps if profile else None)
    ours = {p: our_step_times(cfg, reward, qids, steps, warmup, profiler, p) for p in precisions}
    if profile:
        Path(PROFILE_OUT).parent.mkdir(parents=True, exist_ok=True)
        Path(PROFILE_OUT).write_text(f"# {label}: one GRPO step of ours under torch.profiler, CPU, "
                                     f"{precisions[-1]}\n\n{profiler.table}\n")
        print(f"wrote {PROFILE_OUT}")
    row = {"num_generations": cfg.train.num_generations, "context_k": cfg.prompt.context_k, "ours": ours}
    if ours_only:
        return row
    gc.collect()  # our models and caches go before TRL's step, which needs most of a 24 GiB machine in fp32
    trl = {p: trl_step_times(cfg, reward, qids, steps, warmup, trl_micro_batch, p) for p in precisions}
    ours_best = min(r["median_step_s"] for r in ours.values())
    trl_best = min(r["median_step_s"] for r in trl.values())
    row.update(trl=trl, speedup=trl_best / ours_best,
               speedup_same_precision={p: trl[p]["median_step_s"] / ours[p]["median_step_s"] for p in precisions})
    times = ", ".join(f"ours {p} {ours[p]['median_step_s']:.1f}s, TRL {p} {trl[p]['median_step_s']:.1f}s"
                      for p in precisions)
    print(f"{label}: {times}; fastest against fastest {row['speedup']:.2f}x")
    return row


def cpu_flags() -> list[str]:
    """The CPU features that decide the bf16 speed (Linux; [] elsewhere)."""
    try:
        flags = next(line for line in open("/proc/cpuinfo") if line.startswith("flags")).split()
    except (OSError, StopIteration):
        return []
    return sorted(f for f in flags if f.startswith(("avx512", "amx", "avx2", "fma")))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="experiments/configs/cpu.toml")
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=2,
                        help="untimed steps per trainer: the first compiles, over the second the allocator settles")
    parser.add_argument("--heap-only-malloc", action="store_true",
                        help="glibc serves every allocation from its heap and keeps freed memory (both trainers)")
    parser.add_argument("--scaling", nargs="*", metavar="G,K",
                        help=f"add scaling rows (default {' '.join(SCALING_ROWS)})")
    parser.add_argument("--skip-main", action="store_true", help="only the scaling rows")
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--ours-only", action="store_true", help="skip TRL (quick checks, profiling)")
    parser.add_argument("--trl-micro-batch", type=int, default=TRL_MAX_MICRO_BATCH,
                        help="most completions per TRL forward/backward (gradient accumulation above)")
    parser.add_argument("--precisions", nargs="+", default=["fp32", "bf16"], choices=["fp32", "bf16"],
                        help="train.precision for ours, bf16 = True/False for TRL; the scaling rows use the last")
    parser.add_argument("--torch-compile", action="store_true",
                        help="ours with train.torch_compile whatever the config says (the warm-up step compiles)")
    parser.add_argument("--out", default="runs/bench/bench_grpo.json")
    args = parser.parse_args()
    threads = use_cores()
    kept = args.heap_only_malloc and heap_only_malloc()  # for both trainers: they share this process

    compiled = ["train.torch_compile=true"] if args.torch_compile else []  # else the config's setting
    cfg = load_config(args.config, ["train.beta=0.04", "train.num_iterations=1", "train.max_completion_length=32",
                                    "train.num_prompts_per_step=4", "train.num_generations=8", *compiled])
    reward = build_reward(cfg)
    pool = trainable_queries(cfg, reward.dataset, "train")
    results = {"machine": {"platform": platform.platform(), "processor": platform.processor(),
                           "cpus": os.cpu_count(), "threads": threads, "torch": torch.__version__,
                           "heap_only_malloc": bool(kept), "cpu_flags": cpu_flags()},
               "settings": {"prompts_per_step": 4, "max_completion_length": 32, "beta": 0.04,
                            "temperature": cfg.train.temperature, "loss_type": cfg.train.loss_type,
                            "precisions": args.precisions, "weights_dtype": "float32", "steps": args.steps,
                            "warmup": args.warmup, "torch_compile": cfg.train.torch_compile},
               **provenance()}
    if not args.skip_main:
        results["main"] = compare(cfg, reward, pool, args.steps, args.warmup, "main", args.profile, args.ours_only,
                                  args.trl_micro_batch, tuple(args.precisions))
    if args.scaling is not None:
        rows = []
        for g, k in (map(int, row.split(",")) for row in (args.scaling or SCALING_ROWS)):
            c = load_config(args.config, [f"train.num_generations={g}", f"prompt.context_k={k}",
                                          "train.beta=0.04", "train.max_completion_length=32", *compiled])
            rows.append(compare(c, reward, pool, args.steps, args.warmup, f"G={g} k={k}", ours_only=args.ours_only,
                                trl_micro_batch=args.trl_micro_batch, precisions=(args.precisions[-1],)))
            results["scaling"] = rows
            write(results, args.out)  # after every row: a long table killed half way keeps what it measured
    write(results, args.out)


def write(results: dict, out: str) -> None:
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    Path(out).write_text(json.dumps(results, indent=1))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
