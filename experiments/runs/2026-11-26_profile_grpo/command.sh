#!/usr/bin/env bash
# Run from the repository root, at commit fa1aa1d (`git checkout fa1aa1d`), with
# LESER_DATA=../shared/data/home_depot (what the Makefile sets when that folder exists).
set -euo pipefail
export LESER_DATA=${LESER_DATA:-../shared/data/home_depot}

# At that commit the profile went to experiments/results/profile_grpo.txt; today's bench_grpo.py writes it to
# runs/bench/profile_grpo.txt.
python experiments/bench/bench_grpo.py --steps 1 --warmup 1 --profile --ours-only
