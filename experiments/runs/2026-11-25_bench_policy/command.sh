#!/usr/bin/env bash
# Run from the repository root, at commit 4db4efb (`git checkout 4db4efb`), with
# LESER_DATA=../shared/data/home_depot (what the Makefile sets when that folder exists).
set -euo pipefail
export LESER_DATA=${LESER_DATA:-../shared/data/home_depot}

# Settings as recorded in bench_policy.json (1 thread, G 8, 32 new tokens, 1 repeat).
python experiments/bench/bench_policy.py --threads 1 --repeats 1 \
  --out experiments/runs/2026-11-25_bench_policy/bench_policy.json
