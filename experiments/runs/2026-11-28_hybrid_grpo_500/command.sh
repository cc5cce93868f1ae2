#!/usr/bin/env bash
# The reference recipe, 500 GRPO steps in bf16, from the repository root with LESER_DATA=../shared/data/home_depot
# (what the Makefile sets when that folder exists). Training ran at commit ca75d40; `make train` is the same run at
# later commits except for the sample streams (per-group seeds since af6162a): the same recipe, other samples.
set -euo pipefail
export LESER_DATA=${LESER_DATA:-../shared/data/home_depot}

# 1. The whole recipe in one command: the warm start (800 train queries; the top 1, 2 or 3 shown titles' new
#    words together, kept where the labels say they beat the original; one epoch of SFT), then 500 GRPO steps of
#    4 queries x G 8 against the hybrid plan, bf16. The warm start of this run was the one distilled by the
#    previous reference run (same [distill] settings, reused from runs/hybrid_distill). Resumable: ARGS=--resume.
make train CONFIG=experiments/configs/hybrid.toml

# 2. The checkpoint, chosen on 300 VALID queries (hybrid engine): the best sum of the nDCG@10 and R@100 gains.
python -m leser.cli eval --config experiments/configs/hybrid.toml --set eval.split='"valid"' --max-queries 300 \
  --set eval.zero_shot=false --set 'eval.engines=["hybrid"]' --output-dir runs/eval500_valid \
  --checkpoint "step 300=runs/hybrid_grpo/checkpoint-300" \
  --checkpoint "step 400=runs/hybrid_grpo/checkpoint-400" --checkpoint "step 500=runs/hybrid_grpo/checkpoint-500"
# (5 min: step 300)

# 3. The reference evaluation on the whole test split, every row on every engine, with the step picked in 2
#    (7 min; zero-shot off).
CHOSEN=300
python -m leser.cli eval --config experiments/configs/hybrid.toml --output-dir runs/eval500_test --set eval.zero_shot=false \
  --checkpoint "warm start + GRPO (step $CHOSEN of 500)=runs/hybrid_grpo/checkpoint-$CHOSEN"

# 4. The training log by quarter.
python experiments/summarize_run.py runs/hybrid_grpo --output experiments/runs/2026-11-28_hybrid_grpo_500/train_summary.json
