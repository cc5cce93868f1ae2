"""Two training runs of the same recipe, step by step: do their curves agree within their noise?

Both runs must draw the same queries at each step (same seed and sampler), so each step's difference is paired.
For each tag, over the steps both logged: the two means, the mean per-step difference with a 95% bootstrap
interval over steps, and the first and last value of each.

    python experiments/compare_curves.py runs/hybrid_grpo_fp32 runs/hybrid_grpo --labels fp32 bf16 \
        --output experiments/runs/<run>/curves.json
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

TAGS = ("reward/total/mean", "reward/relevance/mean", "reward/deep/mean", "frac_reward_zero_std", "train/kl",
        "train/entropy", "rules/violation_rate", "time/step_s")


def scalars(run_dir: str) -> dict[str, dict[int, float]]:
    events = EventAccumulator(str(Path(run_dir) / "tb"), size_guidance={"scalars": 0})
    events.Reload()
    return {tag: {e.step: e.value for e in events.Scalars(tag)} for tag in events.Tags()["scalars"]}


def paired(a: np.ndarray, b: np.ndarray, resamples: int = 10_000, seed: int = 0) -> dict[str, float]:
    diff = b - a
    rng = np.random.default_rng(seed)
    means = diff[rng.integers(0, len(diff), (resamples, len(diff)))].mean(axis=1)
    return {"mean_a": float(a.mean()), "mean_b": float(b.mean()), "diff": float(diff.mean()),
            "ci_low": float(np.percentile(means, 2.5)), "ci_high": float(np.percentile(means, 97.5))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("run_a")
    ap.add_argument("run_b")
    ap.add_argument("--labels", nargs=2, default=["a", "b"])
    ap.add_argument("--output")
    args = ap.parse_args()
    a, b = scalars(args.run_a), scalars(args.run_b)
    out = {"runs": dict(zip(args.labels, (args.run_a, args.run_b))), "tags": {}}
    for tag in TAGS:
        if tag not in a or tag not in b:
            continue
        steps = sorted(set(a[tag]) & set(b[tag]))
        x, y = np.array([a[tag][s] for s in steps]), np.array([b[tag][s] for s in steps])
        out["tags"][tag] = {"steps": [steps[0], steps[-1]], "n": len(steps), **paired(x, y),
                            "per_step": {args.labels[0]: x.round(4).tolist(), args.labels[1]: y.round(4).tolist()}}
        r = out["tags"][tag]
        print(f"{tag:26s} steps {steps[0]}-{steps[-1]}: {args.labels[0]} {r['mean_a']:.4f}  {args.labels[1]} "
              f"{r['mean_b']:.4f}  {args.labels[1]} - {args.labels[0]} {r['diff']:+.4f} "
              f"[{r['ci_low']:+.4f}, {r['ci_high']:+.4f}]")
    if args.output:
        Path(args.output).write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
