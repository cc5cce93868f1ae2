#!/usr/bin/env bash
# Label-word ceilings on 300 VALID queries, with the words taken from all relevant items (labels2) or only from
# the relevant items among the hybrid plan's top K results (shownK_labels2): how far copying the right words from
# a context of K titles could go. 1 min on 2 cores. At 43a5cef (+ the --shown option, committed with this folder).
set -euo pipefail
export LESER_DATA=${LESER_DATA:-../shared/data/home_depot}
python experiments/probes/prf_headroom.py --config experiments/configs/labels.toml --max-queries 300 --titles 3 \
  --labels --shown 5 10 20 50 --output experiments/runs/2026-11-28_probe_shown_labels/probe_shown_labels.json
