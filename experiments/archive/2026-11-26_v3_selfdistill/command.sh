#!/usr/bin/env bash
# Run from the repository root, at commit 5ef72dc (`git checkout 5ef72dc`), with
# LESER_DATA=../shared/data/home_depot (what the Makefile sets when that folder exists).
set -euo pipefail
export LESER_DATA=${LESER_DATA:-../shared/data/home_depot}

F='--set reward.rrf_k=60 --set reward.original_weight=2.5'
python -m leser.cli distill --config experiments/configs/cpu.toml --set reward.original_weight=2.0 --set reward.rrf_k=60 \
  --set distill.num_samples=8 --set distill.context_candidates=false --set distill.num_queries=384 --set distill.epochs=2 \
  --set distill.output_dir="runs/cpu_distill"                                          # -> distill_cpu.json
python experiments/fusion_sweep.py --models zero-shot= distilled=runs/cpu_distill --split valid --max-queries 200 \
  --weights 1.5 2 2.5 3 4 --output-dir runs/fusion_sweep_v3                            # -> fusion_sweep_valid200_v3.json
python -m leser.cli distill --config experiments/configs/cpu.toml $F --set distill.num_samples=8 \
  --set distill.context_candidates=false --set distill.num_queries=384 --set distill.epochs=2 \
  --set policy.model="runs/cpu_distill" --set distill.output_dir="runs/cpu_distill_r2" --set distill.seed=1   # -> distill_cpu_round2.json
python -m leser.cli train --config experiments/configs/cpu.toml $F --set policy.model="runs/cpu_distill" \
  --set train.output_dir="runs/cpu_distill_grpo"                                        # -> train_cpu_distill_grpo.json
python -m leser.cli train --config experiments/configs/cpu.toml $F --set policy.model="runs/cpu_distill" \
  --set reward.rule_penalty=0.05 --set train.max_time_s=840 --set train.eval_queries=32 \
  --set train.output_dir="runs/cpu_distill_grpo_rp005"                                  # -> train_cpu_distill_grpo_rule_penalty005.json
python -m leser.cli eval --config experiments/configs/cpu.toml $F --max-queries 300 --output-dir runs/eval_test300_v3 \
  --checkpoint "distilled: best-of-8 SFT=runs/cpu_distill" \
  --checkpoint "distilled + GRPO (32 steps)=runs/cpu_distill_grpo/checkpoint-32" \
  --checkpoint "label-free GRPO, GPU LoRA (39 steps)=runs/gpu/gpu_lf"                  # -> report_v3_selfdistill.*
