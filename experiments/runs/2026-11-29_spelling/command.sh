#!/usr/bin/env bash
# How much fixing the query's typos could give, no model, 300 VALID queries, the hybrid plan of labels.toml.
# From the repository root on the 2-core CPU (about 30 s).
set -euo pipefail
export LESER_DATA=${LESER_DATA:-../shared/data/home_depot}
python experiments/probes/spelling_headroom.py --config experiments/configs/labels.toml --max-queries 300 \
  --output experiments/runs/2026-11-29_spelling/probe_spelling.json
