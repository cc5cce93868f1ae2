#!/usr/bin/env bash
# The reference recipe (labels.toml; train.torch_compile = true now compiles decoding too) at d36efdf (src/ as at
# d03ba8d): GRPO from the recipe's warm start (runs/labels_repro_distill, which make train reuses when its
# distill.json is there), stopped with SIGTERM once checkpoint-200 (the recipe's chosen step) existed. From the
# repository root on the 2-core CPU.
set -uo pipefail
export LESER_DATA=${LESER_DATA:-../shared/data/home_depot}
SETS=(--set 'train.output_dir="runs/labels_decode"' --set 'distill.output_dir="runs/labels_repro_distill"')
python -m leser.cli train --config experiments/configs/labels.toml --overwrite "${SETS[@]}" &
PID=$!
while [ ! -f runs/labels_decode/checkpoint-200/training_state.json ] && kill -0 $PID 2>/dev/null; do sleep 10; done
kill -TERM $PID; wait $PID
# 300 VALID queries, hybrid; then TEST, all queries, every engine.
python -m leser.cli eval --config experiments/configs/labels.toml --set eval.split='"valid"' --max-queries 300 \
  --set eval.zero_shot=false --set 'eval.engines=["hybrid"]' --output-dir runs/eval_decode_valid \
  --checkpoint "step 200 (compiled decoding)=runs/labels_decode/checkpoint-200"
python -m leser.cli eval --config experiments/configs/labels.toml --output-dir runs/eval_decode_test \
  --set eval.zero_shot=false --checkpoint "labels warm start + GRPO (step 200)=runs/labels_decode/checkpoint-200"
python experiments/summarize_run.py runs/labels_decode --output experiments/runs/2026-11-28_labels_decode/train_summary.json
