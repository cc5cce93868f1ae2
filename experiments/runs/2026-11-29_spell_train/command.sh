#!/usr/bin/env bash
# The reference recipe (labels.toml) trained with [engine] correct_spelling = true: the warm start's prompts and its
# written candidates, and every GRPO prompt, show the query with its typos fixed (the engine still runs the query
# as typed). Warm start, then GRPO stopped with SIGTERM once checkpoint-100 existed (not the recipe's 200: at 29 s a step
# here, 200 steps did not fit the session); then 300
# VALID queries, hybrid, typos fixed at eval too. From the repository root on the 2-core CPU (~100 min). In fp32:
# this session's VM has no AVX-512 (torch reports AVX2), and a bf16 SFT batch took 359 s (fp32: 14 s).
set -uo pipefail
export LESER_DATA=${LESER_DATA:-../shared/data/home_depot}
SETS=(--set engine.correct_spelling=true --set train.precision='"fp32"' --set distill.precision='"fp32"' --set 'train.output_dir="runs/spell_train"'
      --set 'distill.output_dir="runs/spell_train_distill"')
python -m leser.cli train --config experiments/configs/labels.toml --overwrite "${SETS[@]}" &
PID=$!
while [ ! -f runs/spell_train/checkpoint-100/training_state.json ] && kill -0 $PID 2>/dev/null; do sleep 10; done
kill -TERM $PID; wait $PID
python -m leser.cli eval --config experiments/configs/labels.toml "${SETS[@]}" --set eval.split='"valid"' \
  --max-queries 300 --set eval.zero_shot=false --set 'eval.engines=["hybrid"]' --output-dir runs/eval_spell_train_valid \
  --checkpoint "warm start=runs/spell_train_distill" \
  --checkpoint "step 100=runs/spell_train/checkpoint-100"
python experiments/summarize_run.py runs/spell_train --output experiments/runs/2026-11-29_spell_train/train_summary.json
