#!/usr/bin/env bash
# GRPO against the BM25 plan (stemmed BM25 serves the query and the expansions; original weight 2, expansion
# weight 1, RRF k 10) instead of the hybrid: labels.toml with engine.kind = "bm25", from the recipe's warm start
# (runs/labels_repro_distill), at d63fd26, stopped with SIGTERM once checkpoint-200 existed. Then 300 VALID
# queries on the BM25 and hybrid plans. From the repository root on the 2-core CPU.
set -uo pipefail
export LESER_DATA=${LESER_DATA:-../shared/data/home_depot}
SETS=(--set 'engine.kind="bm25"' --set 'train.output_dir="runs/bm25_grpo"' --set 'distill.output_dir="runs/labels_repro_distill"')
python -m leser.cli train --config experiments/configs/labels.toml --overwrite "${SETS[@]}" &
PID=$!
while [ ! -f runs/bm25_grpo/checkpoint-200/training_state.json ] && kill -0 $PID 2>/dev/null; do sleep 10; done
kill -TERM $PID; wait $PID
python -m leser.cli eval --config experiments/configs/labels.toml --set 'engine.kind="bm25"' --set eval.split='"valid"' --max-queries 300 \
  --set 'eval.engines=["bm25","hybrid"]' --output-dir runs/eval_bm25_valid \
  --checkpoint "warm start=runs/labels_repro_distill" \
  --checkpoint "bm25 step 100=runs/bm25_grpo/checkpoint-100" --checkpoint "bm25 step 200=runs/bm25_grpo/checkpoint-200"
python experiments/summarize_run.py runs/bm25_grpo --output experiments/runs/2026-11-28_bm25_grpo/train_summary.json
