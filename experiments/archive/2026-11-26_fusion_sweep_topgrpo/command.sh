#!/usr/bin/env bash
# Run from the repository root, at commit 6e9b982 (`git checkout 6e9b982`), with
# LESER_DATA=../shared/data/home_depot (what the Makefile sets when that folder exists).
set -euo pipefail
export LESER_DATA=${LESER_DATA:-../shared/data/home_depot}

# Checkpoint choice on valid, before any test run (14 min).
python experiments/fusion_sweep.py --models top_grpo80=runs/cpu_top_grpo/checkpoint-80 \
  top_grpo100=runs/cpu_top_grpo/checkpoint-100 --split valid --max-queries 500 --weights 4 --rrf-ks 10 \
  --output-dir runs/fusion_sweep_topgrpo
cp runs/fusion_sweep_topgrpo/fusion_sweep.json experiments/runs/2026-11-26_fusion_sweep_topgrpo/fusion_sweep_valid500_topgrpo.json
