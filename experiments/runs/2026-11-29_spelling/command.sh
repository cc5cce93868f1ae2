#!/usr/bin/env bash
# How much fixing the query's typos could give, 300 VALID queries, the hybrid plan of labels.toml: no-model rows,
# and the reference policy (labels_decode, step 200) shown the query as typed and corrected. From the repository
# root on the 2-core CPU (about 6 min; the checkpoint comes from experiments/runs/2026-11-28_labels_decode).
set -euo pipefail
export LESER_DATA=${LESER_DATA:-../shared/data/home_depot}
python experiments/probes/spelling_headroom.py --config experiments/configs/labels.toml --max-queries 300 \
  --checkpoint runs/labels_decode/checkpoint-200 \
  --output experiments/runs/2026-11-29_spelling/probe_spelling.json
