#!/usr/bin/env bash
# The reference policy (experiments/runs/2026-11-28_labels_decode, checkpoint-200, trained by labels.toml) with
# [engine] correct_spelling = true at eval: every expander (the policy, PRF) sees the query with its typos fixed;
# the engine runs it as typed. At 328edcf. 300 VALID queries on the hybrid, then TEST, every engine.
# From the repository root on the 2-core CPU (~17 min); runs/labels_decode/checkpoint-200 from that run's command.sh.
set -euo pipefail
export LESER_DATA=${LESER_DATA:-../shared/data/home_depot}
python -m leser.cli eval --config experiments/configs/labels.toml --set engine.correct_spelling=true \
  --set eval.split='"valid"' --max-queries 300 --set eval.zero_shot=false --set 'eval.engines=["hybrid"]' \
  --output-dir runs/eval_spellfix_valid \
  --checkpoint "step 200, typos fixed before the policy=runs/labels_decode/checkpoint-200"
python -m leser.cli eval --config experiments/configs/labels.toml --set engine.correct_spelling=true \
  --output-dir runs/eval_spellfix_test --set eval.zero_shot=false \
  --checkpoint "labels warm start + GRPO (step 200), typos fixed=runs/labels_decode/checkpoint-200"
