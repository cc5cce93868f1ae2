#!/usr/bin/env bash
# Mutation testing of src/grpo/objective.py and src/reward/ ([mutmut] in setup.cfg), each judged by its own tests
# (tests/test_grpo_objective.py, tests/test_reward.py). Needs the `mutation` extra; ~17 min on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/../../.."
out=experiments/runs/2026-11-28_mutation_reward
make mutation MUTATION_REPORT="$out/report.txt"
cp mutants/mutmut-cicd-stats.json "$out/report.json"
