#!/usr/bin/env bash
# Greedy decoding with and without distinct lines ([eval] distinct_lines), the labels policy and its warm start,
# 300 VALID queries, hybrid plan. From the repository root with LESER_DATA=../shared/data/home_depot.
# The policies are those of experiments/runs/2026-11-28_labels_grpo (runs/labels_distill, runs/labels_grpo).
set -euo pipefail
export LESER_DATA=${LESER_DATA:-../shared/data/home_depot}

# Without (plain greedy; these two reports were written by 2026-11-28_labels_grpo/command.sh at 3c81575).
python -m leser.cli eval --config experiments/configs/labels.toml --set eval.split='"valid"' --max-queries 300 \
  --set eval.zero_shot=false --set 'eval.engines=["hybrid"]' --set eval.distinct_lines=false \
  --output-dir runs/eval_labels_valid \
  --checkpoint "step 200=runs/labels_grpo/checkpoint-200" --checkpoint "step 300=runs/labels_grpo/checkpoint-300"
python -m leser.cli eval --config experiments/configs/labels.toml --set eval.split='"valid"' --max-queries 300 \
  --set eval.zero_shot=false --set 'eval.engines=["hybrid"]' --set eval.distinct_lines=false \
  --output-dir runs/eval_labels_ws_valid --checkpoint "labels warm start=runs/labels_distill"

# With (7 min on 2 idle cores).
python -m leser.cli eval --config experiments/configs/labels.toml --set eval.split='"valid"' --max-queries 300 \
  --set eval.zero_shot=false --set 'eval.engines=["hybrid"]' --set eval.distinct_lines=true \
  --output-dir runs/eval_distinct_valid \
  --checkpoint "step 200, distinct lines=runs/labels_grpo/checkpoint-200" \
  --checkpoint "labels warm start, distinct lines=runs/labels_distill"

# TEST, all 1,068 queries, every engine, the reference policy (labels step 200) with distinct lines (13 min); the
# plain-greedy TEST report is experiments/runs/2026-11-28_labels_grpo/report.md.
python -m leser.cli eval --config experiments/configs/labels.toml --output-dir runs/eval_labels_test_distinct \
  --set eval.zero_shot=false --checkpoint "labels warm start + GRPO (step 200)=runs/labels_grpo/checkpoint-200"
