#!/usr/bin/env bash
# One GRPO step, ours (fp32, bf16) against TRL GRPOTrainer (bf16 False / True), in one run on the 2-core CPU with
# nothing else running (cpu.toml: SmolLM2-135M, 4 prompts x G 8, 32 new tokens, beta 0.04, mu 1). One warm-up
# step and two timed steps per trainer and precision; then the scaling table in bf16 (the default of every
# training config), one timed step each. TRL runs at micro-batches of 16 completions (gradient accumulation above):
# at 32, its second fp32 step ran this 24 GiB machine out of memory twice today.
set -euo pipefail
export LESER_DATA=${LESER_DATA:-../shared/data/home_depot}
D=experiments/runs/2026-11-28_bench_grpo_prealloc
python experiments/bench/bench_grpo.py --steps 2 --warmup 1 --trl-micro-batch 16 --out $D/bench_grpo.json
python experiments/bench/bench_grpo.py --steps 1 --warmup 1 --scaling 4,5 16,5 8,0 --skip-main --precisions bf16 \
  --trl-micro-batch 16 --out $D/bench_grpo_scaling.json
python experiments/bench/bench_grpo.py --steps 1 --warmup 1 --scaling 8,10 --skip-main --precisions bf16 \
  --trl-micro-batch 16 --out $D/bench_grpo_scaling_k10.json
