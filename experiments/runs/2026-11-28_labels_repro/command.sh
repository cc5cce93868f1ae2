#!/usr/bin/env bash
# The reference recipe (labels.toml) rerun from scratch at 6f4fb22's code (609ae0e for the warm start and steps
# 1-87), by step counts: `make train`'s command with its own output folders, stopped once checkpoint-200 (the recipe's
# chosen step) existed. From the repository root on the 2-core CPU, LESER_DATA=../shared/data/home_depot.
set -euo pipefail
export LESER_DATA=${LESER_DATA:-../shared/data/home_depot}
SETS=(--set 'train.output_dir="runs/labels_repro"' --set 'distill.output_dir="runs/labels_repro_distill"')

# 1. Warm start + GRPO. This run was stopped with SIGTERM after step 87 (609ae0e's trainer had glibc serve every
#    allocation from its heap, which slowed the steps; see 2026-11-28_bench_grpo_malloc) and resumed at 6f4fb22;
#    resume is bit-exact, so the policy is the one an uninterrupted run writes. Then stopped after checkpoint-200.
python -m leser.cli train --config experiments/configs/labels.toml --overwrite "${SETS[@]}"  # SIGTERM at step 87
python -m leser.cli train --config experiments/configs/labels.toml --resume "${SETS[@]}"     # SIGTERM at checkpoint-200

# 2. 300 VALID queries, hybrid: this run's step 200 next to the README's earlier reference (labels_grpo, 529348c).
python -m leser.cli eval --config experiments/configs/labels.toml --set eval.split='"valid"' --max-queries 300 \
  --set eval.zero_shot=false --set 'eval.engines=["hybrid"]' --output-dir runs/eval_repro_valid \
  --checkpoint "step 200 (this run)=runs/labels_repro/checkpoint-200" \
  --checkpoint "step 200 (labels_grpo, 529348c)=runs/labels_grpo/checkpoint-200"

# 3. TEST, all queries, every engine, step 200.
python -m leser.cli eval --config experiments/configs/labels.toml --output-dir runs/eval_repro_test \
  --set eval.zero_shot=false --checkpoint "labels warm start + GRPO (step 200)=runs/labels_repro/checkpoint-200"

# 4. The training log by quarter (reward, equal-reward groups, step time, prompts an hour).
python experiments/summarize_run.py runs/labels_repro --output experiments/runs/2026-11-28_labels_repro/train_summary.json
