#!/usr/bin/env bash
# make bench's GRPO step with glibc's malloc serving everything from its heap for both trainers (at 609ae0e every
# trainer did that itself; now the switch is --heap-only-malloc), 2 warm-up + 3 timed steps each, TRL at micro-batches
# of 16; then the probes behind NOTES.md. From the repository root on the 2-core CPU with nothing else running.
set -euo pipefail
export LESER_DATA=${LESER_DATA:-../shared/data/home_depot}
D=experiments/runs/2026-11-28_bench_grpo_malloc
# At 609ae0e (the same as --heap-only-malloc now):
python experiments/bench/bench_grpo.py --steps 3 --warmup 2 --trl-micro-batch 16 --heap-only-malloc --out $D/bench_grpo.json
# Page faults and phase times per step, with and without the allocator setting (at the commit of this folder):
for A in "" --heap-only-malloc; do
  python experiments/probes/phase_profile.py --precision bf16 --phases none --steps 5 $A
done > $D/page_faults.txt
# The update phase in parts, steady state, no profiler, glibc's default:
for P in bf16 fp32; do python experiments/probes/update_breakdown.py --precision $P; done > $D/update_breakdown.txt
# The fused LM head + log-softmax trial (not landed): apply the patch, then alternate fused/unfused steps in one process.
#   git apply $D/fused_head_trial.patch && PYTHONPATH=src python $D/ab_fused_head.py bf16 --heap-only-malloc
# The allocator in a training run: perf on the running `leser train` process of 2026-11-28_labels_repro at step ~85:
#   perf record -F 200 -g -p <pid> -- sleep 20 && perf report --no-children --sort dso,sym
