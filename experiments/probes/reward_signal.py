"""Which reward gives GRPO a signal: the share of groups whose G rewards are all equal (no gradient), on VALID.

Samples G completions per valid query once from one policy (at the training temperature), then scores the same
completions under several reward settings: the retrieval plan, the deep rank term, the rule penalty, and the
headroom filter. Nothing trains; the settings are chosen on what this prints.

    python experiments/probes/reward_signal.py --config experiments/configs/bm25.toml --model runs/bm25_distill
"""
from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

import torch

from grpo.objective import zero_std_groups
from leser.config import load_config
from leser.evaluate import provenance
from leser.runtime import Engines, build_plan
from leser.queries import trainable_queries
from policy import build_prompt, load_policy, parse_completion, sample_groups
from retrieval import load_dataset
from reward import PART_NAMES, SearchReward

VARIANTS = {
    "as configured": {},
    "no deep term": {"deep_weight": 0.0},
    "deep term x1": {"deep_weight": 1.0},
    "rule penalty 0.25": {"rule_penalty": 0.25},
    "rule penalty 0.02": {"rule_penalty": 0.02},
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--config", default="experiments/configs/bm25.toml")
    ap.add_argument("--set", action="append", default=[])
    ap.add_argument("--model", default=None, help="policy folder (default: the config's)")
    ap.add_argument("--queries", type=int, default=48)
    ap.add_argument("--output", default="runs/probe_reward_signal.json")
    args = ap.parse_args()
    cfg = load_config(args.config, args.set)
    dataset = load_dataset(cfg.data.path)
    qids = trainable_queries(cfg, dataset, "valid")[: args.queries]
    engines, G = Engines(cfg, dataset), cfg.train.num_generations
    model, tokenizer = load_policy(args.model or cfg.policy.model, dtype=cfg.policy.dtype)
    context_reward = SearchReward(dataset, build_plan(cfg, dataset, engines=engines), cfg.reward, cfg.rules)
    prompts = [build_prompt(tokenizer, dataset.queries[q], c, cfg.prompt)
               for q, c in zip(qids, context_reward.context(qids, cfg.prompt.context_k))]
    rollout = sample_groups(model, tokenizer, prompts, G, max_new_tokens=cfg.train.max_completion_length,
                            temperature=cfg.train.temperature, generator=torch.Generator().manual_seed(cfg.train.seed))
    expansions = [parse_completion(t, cfg.prompt.num_expansions) for t in rollout.texts]
    rows = {}
    for kind in ("dense", "bm25", "hybrid"):
        plan = build_plan(cfg, dataset, kind, engines)
        for name, change in VARIANTS.items():
            reward = SearchReward(dataset, plan, dataclasses.replace(cfg.reward, **change), cfg.rules)
            parts = reward.score([q for q in qids for _ in range(G)], expansions)
            tied = zero_std_groups(parts.total, G)
            # The engine's own signal: ties of the retrieval terms alone, whatever the rules part does.
            retrieval_tied = zero_std_groups(parts.total - parts.rules, G)
            headroom = set(reward.with_headroom(qids))
            keep = torch.tensor([q in headroom for q in qids])
            rows[f"{kind} / {name}"] = {
                "frac_reward_zero_std": tied.float().mean().item(),
                "frac_retrieval_zero_std": retrieval_tied.float().mean().item(),
                "frac_reward_zero_std_headroom_only": tied[keep].float().mean().item() if keep.any() else None,
                "headroom_share": keep.float().mean().item(),
                **{f"{n}_mean": getattr(parts, n).mean().item() for n in PART_NAMES},
            }
            print(f"{kind:6s} {name:18s} " + " ".join(f"{k}={v:.3f}" for k, v in rows[f'{kind} / {name}'].items()
                                                       if v is not None), flush=True)
    out = {"split": "valid", "num_queries": len(qids), "num_generations": G, "model": args.model,
           **provenance(cfg), "rows": rows}
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
