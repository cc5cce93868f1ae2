#!/usr/bin/env bash
# Compiled decoding (policy.compiled.CompiledDecoder, on with train.torch_compile): each decoded token's decoder
# layers run as one compiled graph, shared by every layer and token. At d03ba8d, from the repository root on the
# 2-core CPU, nothing else running, one command after the other.
set -euo pipefail
export LESER_DATA=${LESER_DATA:-../shared/data/home_depot}
OUT=experiments/runs/2026-11-28_bench_grpo_decode
# 1. Generation alone, eager against compiled decoding, in one process (make bench's rollout shape, 32 tokens).
#    (The file here was written at c3907be, which only adds the per-row count of identical samples.)
python experiments/probes/decode_compile.py --repeats 5 --out $OUT/decode_compile.json
#    Again at f0b7ac9, where the probe also scores each sampler's tokens with the trainer's scorer:
python experiments/probes/decode_compile.py --repeats 5 --out $OUT/decode_compile_scored.json
# 2. make bench's comparison with TRL: 2 warm-up steps (compiling, then the allocator settling), 3 timed.
python experiments/bench/bench_grpo.py --steps 3 --warmup 2 --trl-micro-batch 16 --torch-compile --out $OUT/bench_grpo.json
# 3. The scaling rows in bf16, one timed step each (G 4, G 16, context k 0, k 10), at 59e7d75.
python experiments/bench/bench_grpo.py --skip-main --scaling --precisions bf16 --steps 1 --warmup 1 --trl-micro-batch 16 \
  --torch-compile --out $OUT/bench_grpo_scaling.json
