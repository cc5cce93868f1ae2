#!/usr/bin/env bash
# Mutation testing of src/grpo/objective.py against tests/test_grpo_objective.py ([mutmut] in setup.cfg).
# Needs the `mutation` extra (pip install -e ".[mutation]"); ~1-2 min on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/../../.."
out=experiments/runs/2026-11-28_mutation_objective
make mutation MUTATION_REPORT="$out/report.txt"
cp mutants/mutmut-cicd-stats.json "$out/report.json"
