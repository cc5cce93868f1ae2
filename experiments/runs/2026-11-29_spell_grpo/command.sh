#!/usr/bin/env bash
# labels.toml with spelling candidates in the warm start, each pick fine-tuned on once (labels_spell.toml with
# spelling_repeats = 1), at aafad37 + the working tree of 2026-11-29 (src/ as committed with this folder): the
# warm start, then GRPO, stopped with SIGTERM once checkpoint-200 existed; then 300 VALID queries, hybrid.
# From the repository root on the 2-core CPU (~45 min).
set -uo pipefail
export LESER_DATA=${LESER_DATA:-../shared/data/home_depot}
SETS=(--set distill.spelling_repeats=1 --set 'train.output_dir="runs/spell_grpo"'
      --set 'distill.output_dir="runs/spell_distill"')
python -m leser.cli train --config experiments/configs/labels_spell.toml --overwrite "${SETS[@]}" &
PID=$!
while [ ! -f runs/spell_grpo/checkpoint-200/training_state.json ] && kill -0 $PID 2>/dev/null; do sleep 10; done
kill -TERM $PID; wait $PID
python -m leser.cli eval --config experiments/configs/labels_spell.toml "${SETS[@]}" --set eval.split='"valid"' \
  --max-queries 300 --set eval.zero_shot=false --set 'eval.engines=["hybrid"]' --output-dir runs/eval_spell_valid \
  --checkpoint "spelling warm start=runs/spell_distill" \
  --checkpoint "step 100=runs/spell_grpo/checkpoint-100" \
  --checkpoint "step 200=runs/spell_grpo/checkpoint-200"
python experiments/summarize_run.py runs/spell_grpo --output experiments/runs/2026-11-29_spell_grpo/train_summary.json
