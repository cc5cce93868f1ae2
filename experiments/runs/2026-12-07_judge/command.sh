#!/usr/bin/env bash
# The relevance judge: all-MiniLM-L6-v2 fine-tuned as a cross-encoder on the TRAINING split's judgements (8,506
# queries: 53,k judged pairs at their grade, 2 unjudged hybrid top-50 products and 2 random products a query at 0),
# then reported on 500 VALID queries' judged products against the engine's own scores (dense cosine, BM25).
# Then the go/no-go probe: the wide line pool's lines chosen by the judge's reward (no labels) against the labels'.
# From the repository root on 2 CPU cores (avx512_bf16): ~15 min for the judge, ~10 min for the probe.
set -euo pipefail
export LESER_DATA=${LESER_DATA:-../shared/data/home_depot}
python -m leser.cli judge train --config experiments/configs/judge.toml
python experiments/probes/judge_line_choice.py --config experiments/configs/labels.toml --set judge.model='"runs/judge"' \
  --max-queries 300 --output runs/probe_judge_line_choice.json
