#!/usr/bin/env bash
# Run from the repository root, at commit 432c99a (`git checkout 432c99a`), with
# LESER_DATA=../shared/data/home_depot (what the Makefile sets when that folder exists).
set -euo pipefail
export LESER_DATA=${LESER_DATA:-../shared/data/home_depot}

D=experiments/runs/2026-11-26_bench_grpo
# One GRPO step, LESER against TRL 1.16.0 (`make bench` installs the bench extra).
python experiments/bench/bench_grpo.py --steps 2 --warmup 1 --out $D/bench_grpo.json
# Scaling rows: TRL was OOM-killed on the 24 GiB machine (logs part1/part2), so k 10 and G 16 ran with TRL in
# micro-batches of 16.
python experiments/bench/bench_grpo.py --steps 1 --warmup 1 --scaling 2>&1 | tee $D/bench_grpo_scaling_part1.log
python experiments/bench/bench_grpo.py --steps 1 --warmup 1 --skip-main --scaling 8,0 8,10 16,5 2>&1 | tee $D/bench_grpo_scaling_part2.log
python experiments/bench/bench_grpo.py --steps 1 --warmup 1 --skip-main --scaling 8,10 --trl-micro-batch 16 --out $D/bench_grpo_scaling_k10.json
python experiments/bench/bench_grpo.py --steps 1 --warmup 1 --skip-main --scaling 16,5 --trl-micro-batch 16 --out $D/bench_grpo_scaling_g16.json
