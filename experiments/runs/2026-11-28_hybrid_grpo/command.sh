#!/usr/bin/env bash
# The reference recipe, from the repository root with LESER_DATA=../shared/data/home_depot (what the Makefile sets
# when that folder exists). The training run ran at commit 1274641; `make train` is the same at later commits.
set -euo pipefail
export LESER_DATA=${LESER_DATA:-../shared/data/home_depot}

# 1. The whole recipe in one command: the warm start (800 train queries; the top 1, 2 or 3 shown titles' new
#    words together, picked by the labels when they beat the original; one epoch of SFT), then 150 GRPO steps
#    against the hybrid plan. Resumable: add ARGS=--resume after an interruption (the warm start is reused).
make train CONFIG=experiments/configs/hybrid.toml

# 2. The reference evaluation on the whole test split, every row on every engine.
make eval EVAL_CONFIG=experiments/configs/hybrid.toml \
  ARGS='--output-dir runs/eval_hybrid_test --checkpoint "warm start + 150 GRPO steps=runs/hybrid_grpo/checkpoint-150"'
cp runs/eval_hybrid_test/report.{json,md,png} experiments/runs/2026-11-28_hybrid_grpo/
