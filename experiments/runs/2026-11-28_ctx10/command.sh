#!/usr/bin/env bash
# The 10-title recipe (labels_ctx10.toml): warm start, then 160 GRPO steps against the hybrid plan; steps 160 and 120
# on 300 VALID queries (hybrid) to choose one; the chosen one on TEST, every engine. From the repository root.
set -euo pipefail
export LESER_DATA=${LESER_DATA:-../shared/data/home_depot}

# Warm start (800 queries, 22 min) and GRPO. This run was stopped by SIGTERM after step 9 and resumed in a fresh
# process (--resume), which ran its steps twice as fast as the process that had run the warm start (see NOTES.md).
make train CONFIG=experiments/configs/labels_ctx10.toml
# make train CONFIG=experiments/configs/labels_ctx10.toml ARGS=--resume

# Zero-shot context probe: the 5-title labels policy (runs/labels_grpo/checkpoint-200) shown 20 titles of 40 characters,
# by a copy of the checkpoint whose leser_settings.json says so (prompt.context_k = 20, title_chars = 40,
# max_prompt_tokens = 512); 300 VALID queries, hybrid.
python -m leser.cli eval --config experiments/configs/labels.toml --set eval.split='"valid"' --max-queries 300 \
  --set eval.zero_shot=false --set 'eval.engines=["hybrid"]' --set eval.pseudo_relevance=false \
  --output-dir runs/eval_ctx_valid --checkpoint "step 200, 20 titles of 40 chars=/tmp/ck200_ctx20"

# Choice on valid. The trainer's 64-query greedy validation fell from 0.065 (warm start) to 0.011 (step 160), so the
# warm start and the early checkpoints were scored (3 min each on 2 idle cores).
python -m leser.cli eval --config experiments/configs/labels_ctx10.toml --set eval.split='"valid"' --max-queries 300 \
  --set eval.zero_shot=false --set 'eval.engines=["hybrid"]' --set eval.pseudo_relevance=false \
  --output-dir runs/eval_ctx10_valid \
  --checkpoint "warm start=runs/ctx10_distill" --checkpoint "step 80=runs/ctx10_grpo/checkpoint-80" \
  --checkpoint "step 40=runs/ctx10_grpo/checkpoint-40"
# No row beat the reference (labels step 200: +0.0285 / +0.0079 on the same queries), so nothing went to TEST.
python experiments/summarize_run.py runs/ctx10_grpo --output runs/ctx10_train_summary.json
