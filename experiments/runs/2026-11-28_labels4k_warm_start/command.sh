#!/usr/bin/env bash
# The labels warm start on 4,000 train queries instead of 800 (labels_4k.toml), and its score on 300 VALID queries
# (hybrid), from the repository root with LESER_DATA=../shared/data/home_depot. The distill ran with the code of
# 7b7ecfd (distill.json says 6d579bc-dirty: the commit was read when the file was written; fixed since).
set -euo pipefail
export LESER_DATA=${LESER_DATA:-../shared/data/home_depot}

# 1. The warm start: the first stage of `make train CONFIG=experiments/configs/labels_4k.toml` (that command then
#    goes on to GRPO, which was stopped after its first step: the warm start did not beat the 800-query one).
python -m leser.cli distill --config experiments/configs/labels_4k.toml

# 2. On 300 VALID queries, hybrid, greedy with distinct lines (about 4 min).
python -m leser.cli eval --config experiments/configs/labels_4k.toml --set eval.split='"valid"' --max-queries 300 \
  --set eval.zero_shot=false --set 'eval.engines=["hybrid"]' --output-dir runs/eval_labels4k_ws_valid \
  --checkpoint "labels 4k warm start, distinct lines=runs/labels4k_distill"
