#!/usr/bin/env bash
# GRPO with the relevance judge's reward (judge.toml) and with the mean of the labels and judge rewards
# (mixed.toml), both from labels.toml's warm start, on 2 CPU cores (AMD EPYC, avx512_bf16: precision auto = bf16),
# at ab6f2a8. The judge first: experiments/runs/2026-12-07_judge/command.sh (runs/judge, 8 min). Then VALID (300
# queries, hybrid, typos fixed for every expander, as the README's reference eval) chooses; TEST reports.
set -euo pipefail
export LESER_DATA=${LESER_DATA:-../shared/data/home_depot}
python -m leser.cli distill --config experiments/configs/labels.toml                        # runs/labels_distill, 8 min
python -m leser.cli train --config experiments/configs/judge.toml --set train.max_time_s=1800  # runs/judge_grpo, 218 steps
python -m leser.cli train --config experiments/configs/mixed.toml --set train.max_time_s=1200  # runs/mixed_grpo, 156 steps
python -m leser.cli train --config experiments/configs/labels.toml --set train.max_steps=8 \
  --set train.output_dir='"runs/steptime_labels"' --set train.eval_queries=8 --overwrite     # the labels step, same machine
for r in judge_grpo mixed_grpo steptime_labels; do
  python experiments/summarize_run.py runs/$r --output runs/$r/train_summary.json
done
valid=(--config experiments/configs/labels.toml --set engine.correct_spelling=true --set eval.split='"valid"'
       --max-queries 300 --set eval.zero_shot=false --set 'eval.engines=["hybrid"]')
python -m leser.cli eval "${valid[@]}" --set eval.pseudo_relevance_one_line=true --output-dir runs/eval_valid \
  --checkpoint "labels warm start=runs/labels_distill" \
  --checkpoint "judge reward, step 100=runs/judge_grpo/checkpoint-100" \
  --checkpoint "judge reward, step 200=runs/judge_grpo/checkpoint-200" \
  --checkpoint "mixed reward, step 100=runs/mixed_grpo/checkpoint-100" \
  --checkpoint "mixed reward, step 50=runs/mixed_grpo/checkpoint-50"                          # 14 min
python -m leser.cli eval "${valid[@]}" --output-dir runs/eval_valid_mixed156 \
  --checkpoint "mixed reward, step 156=runs/mixed_grpo/checkpoint-156"                        # 3 min
# Chosen on valid (the best of min(nDCG@10 - PRF, R@100 - PRF)): judge step 100, mixed step 50. Not run on test
# (see NOTES.md): neither is above the three-line PRF on valid.
# Why: the judge's and the labels' rewards of every valid row's lines (2 min).
python experiments/probes/reward_of_eval_rows.py runs/eval_valid/expansions.jsonl --set judge.model='"runs/judge"' \
  --output runs/probe_reward_of_eval_rows.json
