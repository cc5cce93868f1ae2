#!/usr/bin/env bash
# train.torch_compile: the decoder layers compiled for the scoring passes (the update and the reference pass), each
# group scored as one sequence with no KV cache. At 346fb3b, from the repository root on the 2-core CPU, nothing
# else running, one command after the other. The warm-up step compiles (~20 s) and is not timed.
set -euo pipefail
export LESER_DATA=${LESER_DATA:-../shared/data/home_depot}
OUT=experiments/runs/2026-11-28_bench_grpo_compile
# 1. Ours only, eager against compiled (3 timed steps each, fp32 and bf16).
python experiments/bench/bench_grpo.py --ours-only --steps 3 --warmup 1 --out $OUT/ours_eager.json
python experiments/bench/bench_grpo.py --ours-only --steps 3 --warmup 1 --torch-compile --out $OUT/ours_compiled.json
# 2. make bench's comparison with TRL (ours compiled), glibc's default allocator, then heap-only for both.
python experiments/bench/bench_grpo.py --steps 2 --warmup 1 --trl-micro-batch 16 --torch-compile --out $OUT/bench_grpo.json
python experiments/bench/bench_grpo.py --steps 2 --warmup 1 --trl-micro-batch 16 --torch-compile --heap-only-malloc \
  --out $OUT/bench_grpo_heap_only.json
# 3. The scaling rows in bf16, one timed step each (G 4, G 16, context k 0, k 10; the main row is in step 2's file).
python experiments/bench/bench_grpo.py --skip-main --scaling --precisions bf16 --steps 1 --warmup 1 --trl-micro-batch 16 \
  --torch-compile --out $OUT/bench_grpo_scaling.json
