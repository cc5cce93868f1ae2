#!/usr/bin/env bash
# The relevance judge choosing a trained policy's lines at serving time ([eval] judge_choice_samples = 8), with its
# equal-budget no-model baseline (the judge choosing among the PRF lines of the 5 titles the policy is shown).
# VALID only (300 queries, hybrid, typos fixed for every expander, as the README's reference eval); not run on test.
# From the repository root on 2 CPU cores (Intel Xeon with avx512_bf16 and amx_bf16: precision auto = bf16),
# at ec8ef95; rerun at the commit that records each judge-chosen row's pool in expansions.jsonl (same numbers, to
# the last digit), which is the expansions file here, and the probes at that commit.
set -euo pipefail
export LESER_DATA=${LESER_DATA:-../shared/data/home_depot}
python -m leser.cli judge train --config experiments/configs/judge.toml        # runs/judge: 20 min + 5 min report
python -m leser.cli distill --config experiments/configs/labels.toml           # runs/labels_distill: 10 min, 737 kept
python -m leser.cli eval --config experiments/configs/labels.toml --set engine.correct_spelling=true \
  --set eval.split='"valid"' --max-queries 300 --set eval.zero_shot=false --set 'eval.engines=["hybrid"]' \
  --set eval.judge_choice_samples=8 --output-dir runs/eval_valid_choice \
  --checkpoint "labels warm start=runs/labels_distill"                          # 10 min
# The policy's judge-chosen row against PRF's judge-chosen row, paired (seconds)
python experiments/pair_rows.py runs/eval_valid_choice/expansions.jsonl --config experiments/configs/labels.toml \
  --set engine.correct_spelling=true --row "labels warm start + judge" --baseline "pseudo-relevance, judge" \
  --output runs/eval_valid_choice/pair_policy_vs_prf_judge.json
# The judge choosing among both rows' chosen lines and the three PRF lines; with --wide also the go/no-go's wide
# no-model pool, alone and joined by the policy's whole pool (7 min)
python experiments/probes/judge_union_choice.py runs/eval_valid_choice/expansions.jsonl \
  --set engine.correct_spelling=true --wide --output runs/eval_valid_choice/union.json
