#!/usr/bin/env bash
# One GRPO step, ours (fp32, bf16) against TRL GRPOTrainer (bf16 False / True), in one run on the 2-core CPU with
# nothing else running (cpu.toml: SmolLM2-135M, 4 prompts x G 8, 32 new tokens, beta 0.04, mu 1). One warm-up
# step and two timed steps per trainer and precision; then the scaling table in bf16 (the default of every
# training config), one timed step each. TRL runs at micro-batches of 16 completions (gradient accumulation above):
# at 32, its second fp32 step ran this 24 GiB machine out of memory twice today.
set -euo pipefail
export LESER_DATA=${LESER_DATA:-../shared/data/home_depot}
D=experiments/runs/2026-11-28_bench_grpo_prealloc
python experiments/bench/bench_grpo.py --steps 2 --warmup 1 --trl-micro-batch 16 --out $D/bench_grpo.json
python experiments/bench/bench_grpo.py --steps 1 --warmup 1 --scaling 4,5 16,5 8,0 --skip-main --precisions bf16 \
  --trl-micro-batch 16 --out $D/bench_grpo_scaling.json
python experiments/bench/bench_grpo.py --steps 1 --warmup 1 --scaling 8,10 --skip-main --precisions bf16 \
  --trl-micro-batch 16 --out $D/bench_grpo_scaling_k10.json

# Profiles of one bf16 step, by phase, before (7914593, in a worktree with the probe copied in) and after (60dc5ba).
git worktree add /tmp/wt_before 7914593 && cp experiments/probes/phase_profile.py /tmp/wt_before/experiments/probes/
(cd /tmp/wt_before && PYTHONPATH=src python experiments/probes/phase_profile.py --precision bf16 \
  --phases generate reference update) > $D/profile_before_7914593.txt
python experiments/probes/phase_profile.py --precision bf16 --phases generate reference update \
  > $D/profile_after_60dc5ba.txt
# The micro-benchmarks behind the changes.
python experiments/probes/memory_traffic.py > $D/memory_traffic.txt

# fp32 against bf16 after the changes: 15 GRPO steps of cpu.toml from the base model, same seed, so each step's
# queries are the same in both and the differences are paired.
for P in bf16 fp32; do
  python -m leser.cli train --config experiments/configs/cpu.toml --overwrite --set train.precision="\"$P\"" \
    --set train.output_dir="\"runs/curves_$P\"" --set train.eval_queries=0 --set train.max_steps=15 \
    --set train.save_steps=1000
done
python experiments/compare_curves.py runs/curves_fp32 runs/curves_bf16 --labels fp32 bf16 --output $D/curves.json
