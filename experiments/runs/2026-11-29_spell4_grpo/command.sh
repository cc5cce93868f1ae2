#!/usr/bin/env bash
# labels_spell.toml as committed (spelling candidates, each spelling pick fine-tuned on 4 times): the warm start,
# then GRPO, stopped with SIGTERM once checkpoint-200 existed; then 300 VALID queries, hybrid. At 011dbfe.
# From the repository root on the 2-core CPU (~45 min).
set -uo pipefail
export LESER_DATA=${LESER_DATA:-../shared/data/home_depot}
python -m leser.cli train --config experiments/configs/labels_spell.toml --overwrite &
PID=$!
while [ ! -f runs/spell4_grpo/checkpoint-200/training_state.json ] && kill -0 $PID 2>/dev/null; do sleep 10; done
kill -TERM $PID; wait $PID
python -m leser.cli eval --config experiments/configs/labels_spell.toml --set eval.split='"valid"' --max-queries 300 \
  --set eval.zero_shot=false --set 'eval.engines=["hybrid"]' --output-dir runs/eval_spell4_valid \
  --checkpoint "spelling x4 warm start=runs/spell4_distill" \
  --checkpoint "step 100=runs/spell4_grpo/checkpoint-100" \
  --checkpoint "step 200=runs/spell4_grpo/checkpoint-200"
python experiments/summarize_run.py runs/spell4_grpo --output experiments/runs/2026-11-29_spell4_grpo/train_summary.json
