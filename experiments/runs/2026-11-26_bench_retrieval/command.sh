#!/usr/bin/env bash
# Run from the repository root, at commit 42fa430 (`git checkout 42fa430`), with
# LESER_DATA=../shared/data/home_depot (what the Makefile sets when that folder exists).
set -euo pipefail
export LESER_DATA=${LESER_DATA:-../shared/data/home_depot}

python experiments/bench/bench_retrieval.py --data ../shared/data/home_depot \
  --out experiments/runs/2026-11-26_bench_retrieval/bench_retrieval.json
