#!/usr/bin/env bash
# bf16 against fp32 with the sampler that keeps the residual stream in fp32 (policy.precision.SamplingCopy since
# 529348c), the inverse-CDF draw and the fused entropy (0eb24a7, 3c81575). The reference recipe (hybrid.toml, its
# warm start runs/hybrid_distill) for 240 s of steps in each precision: the same queries at each step, so the
# per-step differences are paired. Then one batch scored both ways, with the sampler against the scorer.
set -euo pipefail
export LESER_DATA=${LESER_DATA:-../shared/data/home_depot}
for P in bf16 fp32; do
  python -m leser.cli train --config experiments/configs/hybrid.toml --overwrite \
    --set train.precision="\"$P\"" --set train.output_dir="\"runs/curves_$P\"" --set train.eval_queries=0 \
    --set train.max_time_s=240 --set train.save_steps=1000
done
python experiments/compare_curves.py runs/curves_fp32 runs/curves_bf16 --labels fp32 bf16 \
  --output experiments/runs/2026-11-28_bf16_sampler/curves.json
python experiments/probes/precision_check.py --config experiments/configs/hybrid.toml --model runs/hybrid_distill \
  --output experiments/runs/2026-11-28_bf16_sampler/precision_check.json
