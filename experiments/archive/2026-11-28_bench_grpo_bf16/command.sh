#!/usr/bin/env bash
# One GRPO step, ours in fp32 and bf16 against TRL GRPOTrainer with bf16 False and True, in one run on the 2-core
# CPU with nothing else running (cpu.toml: SmolLM2-135M, 4 prompts x G 8, 32 new tokens, beta 0.04, mu 1).
# One warm-up step and one timed step per trainer and precision (TRL's fp32 step takes about 3 minutes).
set -euo pipefail
export LESER_DATA=${LESER_DATA:-../shared/data/home_depot}
python experiments/bench/bench_grpo.py --steps 1 --warmup 1 --out experiments/runs/2026-11-28_bench_grpo_bf16/bench_grpo.json

# The scaling table with the new default (bf16 for both trainers): G = 4, 16 at context k = 5; k = 0, 10 at G = 8.
# The first run was killed for memory in TRL's k = 10 step (24 GiB) before it wrote its JSON; its log is
# bench_grpo_scaling.log (rows G=4, G=16, k=0). The bench now writes after every row. The k = 10 row was rerun
# with TRL's micro-batch at 16 completions (gradient accumulation above):
python experiments/bench/bench_grpo.py --steps 1 --warmup 1 --scaling --skip-main --precisions bf16 \
  --out experiments/runs/2026-11-28_bench_grpo_bf16/bench_grpo_scaling.json
python experiments/bench/bench_grpo.py --steps 1 --warmup 1 --scaling 8,10 --skip-main --precisions bf16 \
  --trl-micro-batch 16 --out experiments/runs/2026-11-28_bench_grpo_bf16/bench_grpo_scaling_k10.json

# Item 3, the profiler before and after the vocabulary-sized changes (0eb24a7, 3c81575), bf16, one profiled step
# each on the same queries (the sampled completions differ): before at 529348c in a worktree, after at HEAD.
git worktree add /tmp/wt_before 529348c
(cd /tmp/wt_before && PYTHONPATH=src python experiments/bench/bench_grpo.py --steps 1 --warmup 1 --profile --ours-only \
  --precisions bf16 --out /tmp/prof_before.json && cp runs/bench/profile_grpo.txt "$OLDPWD"/experiments/runs/2026-11-28_bench_grpo_bf16/profile_before_529348c.txt)
python experiments/bench/bench_grpo.py --steps 1 --warmup 1 --profile --ours-only --precisions bf16 --out /tmp/prof_after.json
cp runs/bench/profile_grpo.txt experiments/runs/2026-11-28_bench_grpo_bf16/profile_after.txt
