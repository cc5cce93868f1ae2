#!/usr/bin/env bash
# Mutation testing of src/grpo/objective.py and src/reward/ ([mutmut] in setup.cfg: a fork server, one thread a
# mutant), each judged by its own tests (tests/test_grpo_objective.py, tests/test_reward.py). Needs the `mutation`
# extra (mutmut 3.8.1 here); ~11 min on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/../../.."
out=experiments/runs/2026-11-29_mutation
make mutation MUTATION_REPORT="$out/report.txt"
cp mutants/mutmut-cicd-stats.json "$out/report.json"
