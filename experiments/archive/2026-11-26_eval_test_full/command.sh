#!/usr/bin/env bash
# Run from the repository root, at commit fe0e847 (`git checkout fe0e847`), with
# LESER_DATA=../shared/data/home_depot (what the Makefile sets when that folder exists).
set -euo pipefail
export LESER_DATA=${LESER_DATA:-../shared/data/home_depot}

# The reference evaluation: the whole test split (1,068 judged queries), dense engine, RRF k 10, weight 4.
python -m leser.cli eval --config experiments/configs/cpu.toml --output-dir runs/eval_test_full_v5 \
  --checkpoint "top-title distilled + GRPO (100 steps)=runs/cpu_top_grpo/checkpoint-100"   # 35 min
cp runs/eval_test_full_v5/report.{json,md,png} experiments/runs/2026-11-26_eval_test_full/
python experiments/rescore_eval.py runs/eval_test_full_v5          # the paired comparison, 1 min
cp runs/eval_test_full_v5/rescored.json experiments/runs/2026-11-26_eval_test_full/report_paired.json
cp runs/eval_test_full_v5/rescored.md experiments/runs/2026-11-26_eval_test_full/report_paired.md

# The label-free GPU LoRA policy on the same split (20 min).
python -m leser.cli eval --config experiments/configs/cpu.toml --output-dir runs/eval_test_full_labelfree \
  --set eval.zero_shot=false --set eval.pseudo_relevance=false \
  --checkpoint "label-free GRPO, GPU LoRA (39 steps)=runs/gpu/gpu_lf"
cp runs/eval_test_full_labelfree/report.json experiments/runs/2026-11-26_eval_test_full/report_label_free.json
cp runs/eval_test_full_labelfree/report.md experiments/runs/2026-11-26_eval_test_full/report_label_free.md
cp runs/eval_test_full_labelfree/report.png experiments/runs/2026-11-26_eval_test_full/report_label_free.png

# Every policy of the repository on the first 300 judged test queries (30 min).
python -m leser.cli eval --config experiments/configs/cpu.toml --max-queries 300 --output-dir runs/eval_test300_v5 \
  --checkpoint "context-distilled SFT=runs/cpu_ctx_distill" \
  --checkpoint "context-distilled + GRPO (64 steps)=runs/cpu_ctx_grpo/checkpoint-64" \
  --checkpoint "top-title distilled SFT=runs/cpu_top_distill" \
  --checkpoint "top-title distilled + GRPO (100 steps)=runs/cpu_top_grpo/checkpoint-100" \
  --checkpoint "label-free GRPO, GPU LoRA (39 steps)=runs/gpu/gpu_lf"
python experiments/rescore_eval.py runs/eval_test300_v5
cp runs/eval_test300_v5/report.json experiments/runs/2026-11-26_eval_test_full/report_test300.json
cp runs/eval_test300_v5/report.md experiments/runs/2026-11-26_eval_test_full/report_test300.md
cp runs/eval_test300_v5/report.png experiments/runs/2026-11-26_eval_test_full/report_test300.png
cp runs/eval_test300_v5/rescored.json experiments/runs/2026-11-26_eval_test_full/report_test300_paired.json
cp runs/eval_test300_v5/rescored.md experiments/runs/2026-11-26_eval_test_full/report_test300_paired.md
