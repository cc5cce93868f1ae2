"""How long one AdamW step over the policy's weights takes, per ``optim`` (``train.optim``).

The step's gradients are random (the optimiser's work does not depend on their values). Each setting takes one
untimed step, then ``--steps`` timed ones; the settings alternate ``--rounds`` times so a slow moment of the
machine hits each of them alike. Writes the median seconds per step of each setting.

    python experiments/probes/optimizer_step.py --output runs/optimizer_step.json
"""
from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch

from grpo.provenance import provenance
from grpo.schedule import OPTIMIZERS, adamw
from policy import load_policy


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default=None, help="HF id or folder; default: SmolLM2-135M-Instruct")
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--output", default="runs/optimizer_step.json")
    args = parser.parse_args()

    model, _ = load_policy(args.model, dtype="float32")
    params = [p for p in model.parameters() if p.requires_grad]
    for p in params:
        p.grad = torch.randn_like(p) * 1e-3
    seconds: dict[str, list[float]] = {o: [] for o in OPTIMIZERS}
    for _ in range(args.rounds):
        for optim in OPTIMIZERS:
            optimizer = adamw(params, optim, 1e-5, (0.9, 0.99), 0.0)
            optimizer.step()  # creates the state
            for _ in range(args.steps):
                start = time.perf_counter()
                optimizer.step()
                seconds[optim].append(time.perf_counter() - start)
    result = {
        "parameters": sum(p.numel() for p in params), "threads": torch.get_num_threads(),
        "torch": torch.__version__, "steps_per_setting": args.steps * args.rounds,
        "median_s": {o: statistics.median(s) for o, s in seconds.items()},
        "seconds": seconds, **provenance(),
    }
    for optim, s in result["median_s"].items():
        print(f"{optim}: {s:.3f} s per step (median of {len(seconds[optim])})")
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
