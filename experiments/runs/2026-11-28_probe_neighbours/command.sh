#!/usr/bin/env bash
# Expansions from the training split's memory (nearest training queries under the dense encoder), no model,
# 300 VALID queries, every plan. From the repository root; 1 min on 2 idle cores.
set -euo pipefail
export LESER_DATA=${LESER_DATA:-../shared/data/home_depot}
python experiments/probes/neighbour_headroom.py --config experiments/configs/labels.toml --max-queries 300 \
  --output runs/probe_neighbour_headroom.json
