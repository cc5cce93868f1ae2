#!/usr/bin/env bash
# make bench's GRPO step with train.optim = "adamw_torch_fused" (the new default), ours fp32 and bf16 against TRL
# GRPOTrainer fp32 and bf16 (which uses adamw_torch_fused too: transformers' default on torch >= 2.8), in one run
# on the 2-core CPU with nothing else running; then AdamW alone, looped against fused, over SmolLM2-135M's weights.
# Ran at 6d579bc (the tree differed from it in README.md only); the probe at 7b79139.
set -euo pipefail
export LESER_DATA=${LESER_DATA:-../shared/data/home_depot}
OUT=experiments/runs/2026-11-28_bench_grpo_fused
python experiments/bench/bench_grpo.py --steps 1 --warmup 1 --out $OUT/bench_grpo.json
python experiments/probes/optimizer_step.py --output $OUT/optimizer_step.json
