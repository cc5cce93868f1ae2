#!/usr/bin/env bash
# One GRPO step, ours in fp32 and bf16 against TRL GRPOTrainer with bf16 False and True, in one run on the 2-core
# CPU with nothing else running (cpu.toml: SmolLM2-135M, 4 prompts x G 8, 32 new tokens, beta 0.04, mu 1).
# One warm-up step and one timed step per trainer and precision (TRL's fp32 step takes about 3 minutes).
set -euo pipefail
export LESER_DATA=${LESER_DATA:-../shared/data/home_depot}
python experiments/bench/bench_grpo.py --steps 1 --warmup 1 --out experiments/runs/2026-11-28_bench_grpo_bf16/bench_grpo.json
