#!/usr/bin/env bash
# fp32 against bf16 on one batch of real rollouts (4 train queries x G 8 from the warm start), 2 CPU cores.
set -euo pipefail
export LESER_DATA=${LESER_DATA:-../shared/data/home_depot}
python experiments/probes/precision_check.py --config experiments/configs/hybrid.toml --model runs/hybrid_distill \
  --output experiments/runs/2026-11-28_bf16_check/precision_check.json
