#!/usr/bin/env bash
# Run from the repository root, at commit 7670b1e (`git checkout 7670b1e`: cpu.toml then held the settings of the time),
# with LESER_DATA=../shared/data/home_depot (what the Makefile sets when that folder exists).
set -euo pipefail
export LESER_DATA=${LESER_DATA:-../shared/data/home_depot}

# The first reward: nDCG@10 of each expansion's own results (the paper's form); commands as the result files record them.
make train                                                                   # -> train_cpu_v1_expansion_relevance.json
make eval CHECKPOINT=trained=runs/cpu/checkpoint-32 ARGS="--max-queries 300 --output-dir runs/eval_test300"   # -> eval_test300_v1.*
