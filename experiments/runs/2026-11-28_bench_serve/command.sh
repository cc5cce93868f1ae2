#!/usr/bin/env bash
# leser serve under a bounded load loop on 127.0.0.1 (32 requests of 1 query, 4 client threads), the reference
# policy, idle 2-core CPU, fp32. ~35 s. Needs the `serve` extra.
set -euo pipefail
export LESER_DATA=${LESER_DATA:-../shared/data/home_depot}
python experiments/bench/bench_serve.py --config experiments/configs/hybrid.toml \
  --model runs/hybrid_grpo/checkpoint-100 --requests 32 --concurrency 4 --queries-per-request 1 --head 32 \
  --out runs/bench_serve.json
cp runs/bench_serve.json experiments/runs/2026-11-28_bench_serve/bench_serve.json
