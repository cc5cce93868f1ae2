#!/usr/bin/env bash
# The BM25 plan's fusion (original weight x RRF k) for the reference policy and pseudo-relevance, 300 VALID queries.
# From the repository root; 5 min on 2 idle cores.
set -euo pipefail
export LESER_DATA=${LESER_DATA:-../shared/data/home_depot}
python experiments/fusion_sweep.py --config experiments/configs/labels.toml --plan bm25 \
  --models "labels step 200=runs/labels_grpo/checkpoint-200" --pseudo-relevance --max-queries 300 \
  --original-weights 2 3 4 6 --expansion-weights 1 --rrf-ks 10 60 --output-dir runs/fusion_sweep_bm25
