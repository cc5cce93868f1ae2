#!/usr/bin/env bash
# One process against two (torchrun, gloo) on the 2-core CPU: 6 steps of the reference recipe each (bf16, the warm
# start in runs/hybrid_distill), at commit bd79839. Per-step scalars from each run's TensorBoard go to steps.json.
set -euo pipefail
export LESER_DATA=${LESER_DATA:-../shared/data/home_depot}
SETS="--set train.max_steps=6 --set train.eval_queries=0 --set train.save_steps=1000"
python -m leser.cli train --config experiments/configs/hybrid.toml --overwrite --set train.output_dir='"runs/procs1"' $SETS
torchrun --standalone --nproc_per_node=2 -m leser.cli train --config experiments/configs/hybrid.toml --overwrite \
  --set train.output_dir='"runs/procs2"' $SETS
