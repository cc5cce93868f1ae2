#!/usr/bin/env bash
# Run from the repository root with LESER_DATA=../shared/data/home_depot. VALID queries only.
set -euo pipefail
export LESER_DATA=${LESER_DATA:-../shared/data/home_depot}

# No-model expansions (the query + the new words of each of the top n titles) on every plan, and the share of
# queries with headroom; 1,000 valid queries, ~4 min on 2 cores (most of it embedding the catalog once).
python experiments/probes/prf_headroom.py --config experiments/configs/cpu.toml --max-queries 1000 \
  --output runs/probe_prf_headroom.json
cp runs/probe_prf_headroom.json experiments/runs/2026-11-28_probe_engines_valid/prf_headroom.json

# Our stemmed BM25 (bm25s) against rank_bm25 on the same tokens, 300 valid queries, ~1 min.
pip install rank_bm25
python experiments/probes/bm25_agreement.py --queries 300 --output runs/probe_bm25_agreement.json
cp runs/probe_bm25_agreement.json experiments/runs/2026-11-28_probe_engines_valid/bm25_agreement.json

# The reward's signal (share of groups with all-equal rewards) under several settings, on the same completions:
# the warm start's (made by step 1 of ../2026-11-28_hybrid_grpo/command.sh) and the base model's; ~2 min each.
python experiments/probes/reward_signal.py --config experiments/configs/hybrid.toml --model runs/hybrid_distill \
  --queries 32 --output runs/probe_reward_signal_warm.json
python experiments/probes/reward_signal.py --config experiments/configs/hybrid.toml --queries 32 \
  --output runs/probe_reward_signal_base.json
cp runs/probe_reward_signal_warm.json experiments/runs/2026-11-28_probe_engines_valid/reward_signal_warm_start.json
cp runs/probe_reward_signal_base.json experiments/runs/2026-11-28_probe_engines_valid/reward_signal_base_model.json
