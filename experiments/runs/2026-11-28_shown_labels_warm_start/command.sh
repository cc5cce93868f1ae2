#!/usr/bin/env bash
# labels.toml's warm start with distill.label_source = "shown" (label words from the relevant items among the 5
# shown titles only), and its score on 300 VALID queries, hybrid, greedy with distinct lines. At debe656; 11 min.
set -euo pipefail
export LESER_DATA=${LESER_DATA:-../shared/data/home_depot}
python -m leser.cli distill --config experiments/configs/labels.toml --set distill.output_dir='"runs/shown_distill"' \
  --set distill.label_source='"shown"'
python -m leser.cli eval --config experiments/configs/labels.toml --set eval.split='"valid"' --max-queries 300 \
  --set eval.zero_shot=false --set 'eval.engines=["hybrid"]' --output-dir runs/eval_shown_ws_valid \
  --checkpoint "shown-labels warm start=runs/shown_distill"
