#!/usr/bin/env bash
# The hybrid plan's expansion weight (0.25 / 0.5 / 1; original weight 1, RRF k 60) for the reference policy of
# 2026-11-28_labels_repro (step 200) and pseudo-relevance, 300 VALID queries. From the repository root; ran at d515ccd
# (fusion_sweep.json records it); 5 min on 2 idle cores.
set -euo pipefail
export LESER_DATA=${LESER_DATA:-../shared/data/home_depot}
python experiments/fusion_sweep.py --config experiments/configs/labels.toml --plan hybrid \
  --models "step 200=runs/labels_repro/checkpoint-200" --pseudo-relevance --max-queries 300 \
  --original-weights 1 --expansion-weights 0.25 0.5 1 --rrf-ks 60 --output-dir runs/fusion_sweep_hybrid
