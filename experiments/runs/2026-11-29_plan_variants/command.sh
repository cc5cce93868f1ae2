#!/usr/bin/env bash
# Other ways of fusing the reference policy's expansions in the hybrid plan, 300 VALID queries. Reads the valid
# expansions that experiments/runs/2026-11-28_labels_decode/command.sh writes (runs/eval_decode_valid), remaking
# them from its checkpoint when missing. From the repository root on the 2-core CPU (about 1 min).
set -euo pipefail
export LESER_DATA=${LESER_DATA:-../shared/data/home_depot}
if [ ! -f runs/eval_decode_valid/expansions.jsonl ]; then
  python -m leser.cli eval --config experiments/configs/labels.toml --set eval.split='"valid"' --max-queries 300 \
    --set eval.zero_shot=false --set 'eval.engines=["hybrid"]' --output-dir runs/eval_decode_valid \
    --checkpoint "step 200 (compiled decoding)=runs/labels_decode/checkpoint-200"
fi
python experiments/probes/plan_variants.py --expansions runs/eval_decode_valid/expansions.jsonl --system step \
  --output experiments/runs/2026-11-29_plan_variants/probe_plan_variants.json
