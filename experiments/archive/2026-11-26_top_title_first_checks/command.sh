#!/usr/bin/env bash
# Run from the repository root, at commit e0255b0 (`git checkout e0255b0`), with
# LESER_DATA=../shared/data/home_depot (what the Makefile sets when that folder exists).
set -euo pipefail
export LESER_DATA=${LESER_DATA:-../shared/data/home_depot}

python experiments/fusion_sweep.py --models top_distilled=runs/cpu_top_distill --split valid --max-queries 500 \
  --weights 2.5 4 --rrf-ks 10                                                             # -> fusion_sweep_valid500_top.json
make train ARGS='--set policy.model="runs/cpu_top_distill" --set train.output_dir="runs/cpu_top_grpo" --set train.max_time_s=600 --set train.eval_queries=32 --set train.save_steps=100'
#                                                                                          -> train_cpu_top_grpo_21steps.json
python -m leser.cli eval --config experiments/configs/cpu.toml --max-queries 300 --output-dir runs/eval_test300_top \
  --checkpoint "top-title distilled + GRPO (21 steps)=runs/cpu_top_grpo/checkpoint-21"   # -> report_top_title_grpo.*
