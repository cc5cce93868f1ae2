#!/usr/bin/env bash
# The reference recipe, from the repository root with LESER_DATA=../shared/data/home_depot (what the Makefile sets
# when that folder exists). The training run ran at commit 1274641; `make train` is the same at later commits.
set -euo pipefail
export LESER_DATA=${LESER_DATA:-../shared/data/home_depot}

# 1. The whole recipe in one command: the warm start (800 train queries; the top 1, 2 or 3 shown titles' new
#    words together, picked by the labels when they beat the original; one epoch of SFT), then 150 GRPO steps
#    against the hybrid plan. Resumable: add ARGS=--resume after an interruption (the warm start is reused).
make train CONFIG=experiments/configs/hybrid.toml

# 2. The checkpoint, chosen on 300 VALID queries (hybrid engine): the best sum of the nDCG@10 and R@100 gains.
python -m leser.cli eval --config experiments/configs/hybrid.toml --set eval.split='"valid"' --max-queries 300 \
  --set eval.zero_shot=false --set 'eval.engines=["hybrid"]' --output-dir runs/eval_hybrid_valid \
  --checkpoint "warm start=runs/hybrid_distill" --checkpoint "step 100=runs/hybrid_grpo/checkpoint-100" \
  --checkpoint "step 150=runs/hybrid_grpo/checkpoint-150"   # 6 min: step 100
cp runs/eval_hybrid_valid/report.json experiments/runs/2026-11-28_hybrid_grpo/valid_report.json
cp runs/eval_hybrid_valid/report.md experiments/runs/2026-11-28_hybrid_grpo/valid_report.md

# 3. The reference evaluation on the whole test split, every row on every engine (17 min).
python -m leser.cli eval --config experiments/configs/hybrid.toml --output-dir runs/eval_hybrid_test \
  --checkpoint "warm start + GRPO (step 100 of 150)=runs/hybrid_grpo/checkpoint-100"
cp runs/eval_hybrid_test/report.{json,md,png} experiments/runs/2026-11-28_hybrid_grpo/
python experiments/summarize_run.py runs/hybrid_grpo --output experiments/runs/2026-11-28_hybrid_grpo/train_summary.json
