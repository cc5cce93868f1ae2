#!/usr/bin/env bash
# Lines from every source a prompt could show, 300 VALID queries, hybrid plan, no model: the label-chosen ceiling
# (relaxation_headroom.py --wide), label-free choices (line_choice.py), and one expanded lexical query in place of a
# list per expansion (expanded_query.py, on the spell_train step-100 policy's valid expansions and PRF's).
# At 0cc0cd0. From the repository root on the 2-core CPU (~8 min with the catalog already encoded).
set -euo pipefail
export LESER_DATA=${LESER_DATA:-../shared/data/home_depot}
python experiments/probes/relaxation_headroom.py --max-queries 300 --wide --output runs/probe_relaxation_wide.json
python experiments/probes/line_choice.py --max-queries 300 --output runs/probe_line_choice.json
python experiments/probes/expanded_query.py --expansions runs/eval_spell_train_valid/expansions.jsonl \
    --system "step 100" --output runs/probe_expanded_query.json
