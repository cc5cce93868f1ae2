#!/usr/bin/env bash
# Run from the repository root, at commit 6e9b982 (`git checkout 6e9b982`), with
# LESER_DATA=../shared/data/home_depot (what the Makefile sets when that folder exists).
set -euo pipefail
export LESER_DATA=${LESER_DATA:-../shared/data/home_depot}

# GRPO from the top-title warm start (runs/cpu_top_distill, see 2026-11-26_top_title_distill): stopped by the
# 10-minute budget after 21 steps, then resumed to 100 steps (79 more in 35 min 11 s; 45 min 40 s of GRPO in all).
make train ARGS='--set policy.model="runs/cpu_top_distill" --set train.output_dir="runs/cpu_top_grpo" --set train.max_time_s=600 --set train.eval_queries=32 --set train.save_steps=100'
make train ARGS='--set policy.model="runs/cpu_top_distill" --set train.output_dir="runs/cpu_top_grpo" --set train.max_steps=100 --set train.max_time_s=2400 --set train.eval_queries=32 --set train.save_steps=20 --resume'
cp runs/cpu_top_grpo/result.json experiments/runs/2026-11-26_top_title_grpo/train_cpu_top_grpo.json
