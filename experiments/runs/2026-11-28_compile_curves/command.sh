#!/usr/bin/env bash
# Eager against compiled (train.torch_compile) on the reference recipe: labels.toml from its warm start
# (runs/labels_repro_distill), 20 GRPO steps each, bf16, same seed, so both draw the same queries at each step and
# step 1 samples the same completions. At 346fb3b, one after the other on the 2-core CPU, ~8 minutes.
set -euo pipefail
export LESER_DATA=${LESER_DATA:-../shared/data/home_depot}
for C in false true; do
  python -m leser.cli train --config experiments/configs/labels.toml --overwrite \
    --set distill.output_dir='"runs/labels_repro_distill"' --set train.output_dir="\"runs/curves_compile_$C\"" \
    --set train.torch_compile=$C --set train.max_steps=20 --set train.eval_queries=0 --set train.save_steps=1000
done
python experiments/compare_curves.py runs/curves_compile_false runs/curves_compile_true --labels eager compiled \
  --output experiments/runs/2026-11-28_compile_curves/curves.json
