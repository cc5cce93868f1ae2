#!/usr/bin/env bash
# A warm start written from the training labels, then 400 GRPO steps against the hybrid plan, from the repository
# root with LESER_DATA=../shared/data/home_depot. Ran at commit 529348c (distill and training).
set -euo pipefail
export LESER_DATA=${LESER_DATA:-../shared/data/home_depot}

# 0. The ceiling on 300 VALID queries: expansions written from the labels (the query plus the words the relevant
#    items share) against the shown titles' new words, on each plan (30 s).
python experiments/probes/prf_headroom.py --config experiments/configs/labels.toml --max-queries 300 --titles 3 \
  --labels --output experiments/runs/2026-11-28_labels_grpo/probe_label_headroom.json

# 1. The recipe: the warm start (800 train queries; candidates: the top 1-3 titles' new words and the label terms;
#    the reward's best kept; one epoch of SFT in bf16, 8 min), then GRPO steps of 4 queries x G 8, bf16, on a
#    400-step schedule. This run was stopped with SIGTERM after its step-300 checkpoint, for session time; the
#    same command with ARGS=--resume finishes the schedule.
make train CONFIG=experiments/configs/labels.toml

# 2. The warm start alone, on 300 VALID queries (hybrid), next to the titles-only warm start of hybrid.toml.
python -m leser.cli eval --config experiments/configs/labels.toml --set eval.split='"valid"' --max-queries 300 \
  --set eval.zero_shot=false --set 'eval.engines=["hybrid"]' --output-dir runs/eval_labels_ws_valid \
  --checkpoint "labels warm start=runs/labels_distill" --checkpoint "titles warm start=runs/hybrid_distill"

# 3. The checkpoint, chosen on 300 VALID queries (hybrid): the best sum of the nDCG@10 and R@100 gains.
python -m leser.cli eval --config experiments/configs/labels.toml --set eval.split='"valid"' --max-queries 300 \
  --set eval.zero_shot=false --set 'eval.engines=["hybrid"]' --output-dir runs/eval_labels_valid \
  --checkpoint "step 200=runs/labels_grpo/checkpoint-200" --checkpoint "step 300=runs/labels_grpo/checkpoint-300"

# 4. TEST, every engine, the chosen step.
CHOSEN=${CHOSEN:-200}
python -m leser.cli eval --config experiments/configs/labels.toml --output-dir runs/eval_labels_test \
  --set eval.zero_shot=false --checkpoint "labels warm start + GRPO (step $CHOSEN)=runs/labels_grpo/checkpoint-$CHOSEN"

# 5. The training log by quarter.
python experiments/summarize_run.py runs/labels_grpo --output experiments/runs/2026-11-28_labels_grpo/train_summary.json
