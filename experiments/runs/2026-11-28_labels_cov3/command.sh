#!/usr/bin/env bash
# GRPO with the coverage term (R@100 gain of the fused list) weighted 3x, 150 steps from the labels warm start,
# against the hybrid plan; from the repository root with LESER_DATA=../shared/data/home_depot. Trained at 7b79139.
set -euo pipefail
export LESER_DATA=${LESER_DATA:-../shared/data/home_depot}
OUT=experiments/runs/2026-11-28_labels_cov3

# 1. The recipe: reuses runs/labels_distill (labels.toml's warm start) when present, else distills it first;
#    then 150 GRPO steps of 4 queries x G 8, bf16 (36 min on 2 cores).
make train CONFIG=experiments/configs/labels_cov3.toml

# 2. On 300 VALID queries, hybrid, greedy with distinct lines.
python -m leser.cli eval --config experiments/configs/labels_cov3.toml --set eval.split='"valid"' --max-queries 300 \
  --set eval.zero_shot=false --set 'eval.engines=["hybrid"]' --output-dir runs/eval_cov3_valid \
  --checkpoint "step 100=runs/labels_cov3_grpo/checkpoint-100" --checkpoint "step 150=runs/labels_cov3_grpo/checkpoint-150"

# 3. The training log by quarter.
python experiments/summarize_run.py runs/labels_cov3_grpo --output $OUT/train_summary.json
