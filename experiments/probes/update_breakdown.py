"""Where the update phase's time goes, timed without the profiler: the transformer body, the LM head + log-softmax,
and backward, with grad and in inference mode, in the steady state (after ``--warmup`` ordinary steps).
With the config's ``train.torch_compile`` (``cpu.toml`` sets it) the layers are compiled, and the first inference
repeat compiles its graph: read the medians of several repeats.

Same settings as ``make bench``'s step (4 prompts x G 8, 32 new tokens). The profiler distorts this phase on the
2-core VM (its buffers churn the heap and element-wise ops run several times slower), so each part is timed
with ``time.perf_counter`` around the repo's own functions.

    python experiments/probes/update_breakdown.py --precision bf16
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
import time

import torch

import policy.logprobs as scoring
from grpo.host import use_cores
from grpo.trainer import GRPOTrainer, PhaseTimer
from leser.config import load_config
from leser.runtime import build_reward
from leser.queries import trainable_queries
from policy import load_policy
from policy.precision import autocast

from phase_profile import BENCH_SETTINGS  # this folder: the bench's step settings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="experiments/configs/cpu.toml")
    parser.add_argument("--precision", default="bf16", choices=["fp32", "bf16"])
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    use_cores()
    cfg = load_config(args.config, BENCH_SETTINGS + [f'train.precision="{args.precision}"'])
    reward = build_reward(cfg)
    qids = trainable_queries(cfg, reward.dataset, "train")[: cfg.train.num_prompts_per_step * (args.warmup + 1)]
    model, tokenizer = load_policy(cfg.policy.model, dtype="float32")
    device, G = torch.device("cpu"), cfg.train.num_generations
    head = model.get_output_embeddings()
    times: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        cfg.train.output_dir = tmp
        trainer = GRPOTrainer(cfg.train, model, tokenizer, reward, cfg.prompt, qids, [], lora_cfg=cfg.lora)
        for _ in range(args.warmup):
            timer = PhaseTimer()
            trainer.update(trainer.rollout_with_dynamic_sampling(timer), timer)
        r = trainer.rollout_with_dynamic_sampling(PhaseTimer()).rollout
        model.train()
        for _ in range(args.repeats):
            for mode in ("grad", "inference"):
                grad = mode == "grad"
                with torch.inference_mode(not grad), autocast(args.precision, device):
                    t0 = time.perf_counter()
                    hidden = scoring._group_sequence_hidden(model, r.prompt_ids, r.completion_ids, G)
                    t1 = time.perf_counter()
                    logprobs = scoring._head_logprobs(head, hidden, r.completion_ids, cfg.train.temperature, True)[0]
                    t2 = time.perf_counter()
                times.setdefault(f"{mode}: body", []).append(t1 - t0)
                times.setdefault(f"{mode}: head + log-softmax", []).append(t2 - t1)
                if grad:
                    (logprobs * r.completion_mask).sum().backward()
                    times.setdefault("grad: backward", []).append(time.perf_counter() - t2)
                    model.zero_grad(set_to_none=True)
    for part, seconds in times.items():
        print(f"{args.precision} {part}: median {statistics.median(seconds):.2f} s of {len(seconds)} "
              f"({', '.join(f'{s:.2f}' for s in seconds)})")


if __name__ == "__main__":
    main()
