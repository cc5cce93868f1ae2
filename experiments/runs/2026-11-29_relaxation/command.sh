#!/usr/bin/env bash
# No-model lines on 300 VALID queries, hybrid plan: the query with one word dropped, and the query plus a shown
# title's new words; each family's first 3 lines together, its per-query oracle line, and a greedy oracle of up
# to 3 lines from both. At 32baacc + the probe.
# From the repository root on the 2-core CPU (~4 min, most of it encoding the catalog once).
set -euo pipefail
export LESER_DATA=${LESER_DATA:-../shared/data/home_depot}
python experiments/probes/relaxation_headroom.py --max-queries 300 --output runs/probe_relaxation.json
