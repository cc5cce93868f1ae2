#!/usr/bin/env bash
# Pooling 8 sampled completions per query against one greedy completion, the reference policy (labels_repro step 200),
# 300 valid queries, hybrid plan. Ran at 2ca5498 (the probe was committed at 346fb3b), from the repository root on
# the 2-core CPU, alone; ~17 minutes.
set -euo pipefail
export LESER_DATA=${LESER_DATA:-../shared/data/home_depot}
python experiments/probes/sample_pooling.py --config experiments/configs/labels.toml \
  --checkpoint runs/labels_repro/checkpoint-200 --split valid --max-queries 300 --samples 8 --temperature 1.0 0.7 \
  --output experiments/runs/2026-11-28_sample_pooling/valid300.json
