"""A training run's TensorBoard scalars, summarised by quarter of the run: what the note of a run quotes.

    python experiments/summarize_run.py runs/hybrid_grpo --output experiments/runs/<run>/train_summary.json
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

TAGS = ("frac_reward_zero_std", "reward/total/mean", "reward/relevance/mean", "reward/coverage/mean",
        "reward/deep/mean", "reward/rules/mean", "rules/violation_rate", "train/kl", "time/step_s",
        "time/tokens_per_s", "time/prompts_per_hour", "completions/mean_length")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("run_dir")
    ap.add_argument("--output", default=None)
    args = ap.parse_args()
    events = EventAccumulator(str(Path(args.run_dir) / "tb"), size_guidance={"scalars": 0})
    events.Reload()
    available = set(events.Tags()["scalars"])
    summary = {"run_dir": args.run_dir, "quarters": {}, "valid": {}}
    for tag in TAGS:
        if tag not in available:
            continue
        values = np.array([e.value for e in events.Scalars(tag)])
        summary["quarters"][tag] = [float(q.mean()) for q in np.array_split(values, 4) if len(q)]
        summary.setdefault("steps", len(values))
        if tag == "reward/coverage/mean":
            summary["steps_with_zero_mean_coverage"] = int((values == 0).sum())
    for tag in sorted(t for t in available if t.startswith("valid/")):
        summary["valid"][tag] = [(e.step, e.value) for e in events.Scalars(tag)]
    step_s = summary["quarters"].get("time/step_s")
    if step_s:
        summary["mean_step_s"] = float(np.mean(step_s))
    text = json.dumps(summary, indent=1)
    print(text)
    if args.output:
        Path(args.output).write_text(text)


if __name__ == "__main__":
    main()
