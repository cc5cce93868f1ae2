#!/usr/bin/env bash
# The reference recipe (labels.toml, train.torch_compile = true: scoring and now decoding compiled) from its warm
# start (runs/labels_repro_distill), 20 GRPO steps in bf16, then in fp32; same seed, so every run draws the same
# queries at each step. At f0b7ac9's code (c3907be for src/), one after the other on the 2-core CPU, ~9 minutes.
# Compared with each other, and bf16 with the compiled-scoring run of 2026-11-28_compile_curves (runs/
# curves_compile_true: the same command at 346fb3b, decoding eager).
set -euo pipefail
export LESER_DATA=${LESER_DATA:-../shared/data/home_depot}
for P in bf16 fp32; do
  python -m leser.cli train --config experiments/configs/labels.toml --overwrite \
    --set distill.output_dir='"runs/labels_repro_distill"' --set train.output_dir="\"runs/decode_curves_$P\"" \
    --set train.precision="\"$P\"" --set train.max_steps=20 --set train.eval_queries=0 --set train.save_steps=1000
done
OUT=experiments/runs/2026-11-28_decode_curves
python experiments/compare_curves.py runs/decode_curves_fp32 runs/decode_curves_bf16 --labels fp32 bf16 \
  --output $OUT/curves_fp32_bf16.json
python experiments/compare_curves.py runs/curves_compile_true runs/decode_curves_bf16 \
  --labels eager_decoding compiled_decoding --output $OUT/curves_decoding.json
