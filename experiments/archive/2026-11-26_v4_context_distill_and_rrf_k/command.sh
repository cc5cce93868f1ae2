#!/usr/bin/env bash
# Run from the repository root, at commit 5ef72dc (`git checkout 5ef72dc`), with
# LESER_DATA=../shared/data/home_depot (what the Makefile sets when that folder exists).
set -euo pipefail
export LESER_DATA=${LESER_DATA:-../shared/data/home_depot}

F='--set reward.rrf_k=60 --set reward.original_weight=2.5'
python -m leser.cli distill --config experiments/configs/cpu.toml $F                     # -> runs/cpu_ctx_distill, distill_cpu_context.json
python -m leser.cli train --config experiments/configs/cpu.toml $F --set policy.model="runs/cpu_ctx_distill" \
  --set train.output_dir="runs/cpu_ctx_grpo" --set train.max_steps=64 --set train.max_time_s=2400   # -> train_cpu_ctx_grpo.json
python experiments/fusion_sweep.py --models title1=@title1 ctx_distilled=runs/cpu_ctx_distill \
  ctx_grpo64=runs/cpu_ctx_grpo/checkpoint-64 --split valid --max-queries 500 --weights 2 2.5 3 4 \
  --rrf-ks 5 10 20 60 --output-dir runs/fusion_sweep_v4                                   # -> fusion_sweep_valid500_v4.json
