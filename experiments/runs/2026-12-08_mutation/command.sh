#!/usr/bin/env bash
# Mutation testing widened to the metrics, the eval's per-query scoring and pairing (leser/scoring.py) and the query
# selection (leser/queries.py), beside the objective and the reward ([mutmut] in setup.cfg: a fork server, one thread
# a mutant). Needs the `mutation` extra (mutmut 3.8.1 here). 26 min on 2 cores (Intel Xeon, avx512_bf16), the
# first 10 of them shared with the test suite.
set -euo pipefail
cd "$(dirname "$0")/../../.."
out=experiments/runs/2026-12-08_mutation
make mutation MUTATION_REPORT="$out/report.txt"
cp mutants/mutmut-cicd-stats.json "$out/report.json"
# This folder's report came from the run above at c8a1dce, then the survivors rerun (`mutmut run <names>`, 6 min)
# once the tests added in the next commit were in mutants/tests: those tests are what killed them. A fresh
# `make mutation` with those tests was not run.
