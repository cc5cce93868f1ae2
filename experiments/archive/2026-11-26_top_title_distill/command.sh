#!/usr/bin/env bash
# Run from the repository root, at commit e2aa503 (`git checkout e2aa503`), with
# LESER_DATA=../shared/data/home_depot (what the Makefile sets when that folder exists).
set -euo pipefail
export LESER_DATA=${LESER_DATA:-../shared/data/home_depot}

# Best-of-pool warm start: each train query extended by the new words of its top result's title, kept where it
# beats the original query; the policy is fine-tuned on the kept ones (51 s pool, 11 min SFT).
make distill ARGS='--set distill.output_dir="runs/cpu_top_distill" --set distill.context_titles=1 --set distill.num_queries=1500'
cp runs/cpu_top_distill/distill.json experiments/runs/2026-11-26_top_title_distill/distill_cpu_top_title.json
