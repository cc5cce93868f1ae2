"""Is bf16 safe for GRPO here? fp32 against bf16 on the same batch of real rollouts, on the same weights.

One batch (``--prompts`` train queries x G completions, sampled once in fp32 from ``--model``) is scored by the
same policy under ``train.precision = fp32`` and ``bf16``. Reports:

- the completion log-probs: largest and mean absolute difference over the scored tokens;
- the importance ratio on the first pass under bf16: its largest deviation from 1 (must be exactly 0);
- the KL to the reference before any update (must be exactly 0 in both) and after one update on this batch;
- the gradient of the GRPO loss: cosine similarity and relative norm difference, bf16 against fp32;
- the time of the reference pass and of one forward + backward, each precision;
- the sampler against the scorer under bf16: the log-probs of the batch under the sampling copy (bf16 matrix
  weights, fp32 rest, under autocast) and under a copy cast wholly to bf16 (the sampler before 2026-11-28's
  fix), each against the autocast scorer; and the time to sample the batch in fp32 and with the bf16 copy.

    python experiments/probes/precision_check.py --config experiments/configs/hybrid.toml --model runs/hybrid_distill
"""
from __future__ import annotations

import argparse
import copy
import json
import tempfile
import time
from pathlib import Path

import torch

from grpo.logs import PhaseTimer
from grpo.objective import LossNormalizer, grpo_loss, masked_mean
from grpo.provenance import provenance
from grpo.trainer import GRPOTrainer
from leser.config import load_config
from leser.runtime import build_reward
from leser.queries import trainable_queries
from policy import CompletionScorer, load_policy


def trainer_for(cfg, reward, model_dir: str, precision: str, tmp: str) -> GRPOTrainer:
    cfg.train.precision, cfg.train.output_dir = precision, tmp
    model, tokenizer = load_policy(model_dir, dtype="float32")
    return GRPOTrainer(cfg.train, model, tokenizer, reward, cfg.prompt, ["unused"], [], lora_cfg=cfg.lora)


def loss_and_grad(trainer: GRPOTrainer, batch, ref: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, dict]:
    """Log-probs ``[B, T]``, the flat gradient of the first-pass GRPO loss, and the loss's statistics."""
    cfg, mask = trainer.cfg, batch.loss_mask
    trainer.model.train()
    trainer.model.zero_grad(set_to_none=True)
    start = time.perf_counter()
    logprobs = trainer.logprobs(trainer.scorer, batch, 0, len(batch.prompts), slice(None))
    norm = LossNormalizer(num_sequences=mask.shape[0], num_tokens=int(mask.sum()),
                          max_completion_length=cfg.max_completion_length, num_micro_batches=1)
    loss, stats = grpo_loss(logprobs, logprobs.detach(), ref, batch.advantages, mask, norm,
                            loss_type=cfg.loss_type, epsilon=cfg.epsilon, beta=cfg.beta)
    loss.backward()
    seconds = time.perf_counter() - start
    grad = torch.cat([p.grad.flatten() for p in trainer.model.parameters() if p.grad is not None])
    ratio = torch.exp(logprobs - logprobs.detach())
    stats = {k: v.item() for k, v in stats.items()}
    stats.update(forward_backward_s=seconds, ratio_max_deviation=masked_max(abs(ratio - 1), mask))
    return logprobs.detach(), grad, stats


def sampler_gap(trainer: GRPOTrainer, batch) -> dict:
    """Largest and mean |log-prob difference| of each candidate sampler against the (bf16) scorer on ``batch``."""
    r, mask, cfg = batch.rollout, batch.loss_mask, trainer.cfg
    scored = trainer.frozen_logprobs(trainer.scorer, batch)
    out = {}
    with torch.inference_mode():
        # The sampler since the fix runs under autocast, like the scorer; the old one ran without it.
        copy_lp = trainer.frozen_logprobs(CompletionScorer(trainer.rollout_policy.model()), batch)
        all_bf16 = CompletionScorer(copy.deepcopy(trainer.model).to(torch.bfloat16))
        old_lp = all_bf16(r.prompt_ids, r.completion_ids, r.completion_mask, cfg.num_generations,
                          temperature=cfg.temperature)
    for name, lp in (("linear_weights_bf16_under_autocast", copy_lp), ("all_bf16", old_lp)):
        diff = (lp.float() - scored).abs()
        out[name] = {"abs_diff_max": masked_max(diff, mask), "abs_diff_mean": masked_mean(diff, mask).item()}
    return out


def masked_max(x: torch.Tensor, mask: torch.Tensor) -> float:
    return float(torch.where(mask.bool(), x.detach(), 0.0).max())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--config", default="experiments/configs/hybrid.toml")
    ap.add_argument("--model", default=None, help="policy folder (default: the config's)")
    ap.add_argument("--prompts", type=int, default=4)
    ap.add_argument("--output", default="runs/precision_check.json")
    args = ap.parse_args()
    cfg = load_config(args.config, [f"train.num_prompts_per_step={args.prompts}"])
    model_dir = args.model or cfg.policy.model
    reward = build_reward(cfg)
    qids = trainable_queries(cfg, reward.dataset, "train")[: args.prompts]
    out: dict = {"model": model_dir or "default", "queries": qids}
    with tempfile.TemporaryDirectory() as tmp:
        fp32 = trainer_for(cfg, reward, model_dir, "fp32", tmp)
        timer = PhaseTimer()
        batch = fp32.rollout(qids, timer)
        out["generate_s"] = {"fp32": timer.seconds["generate"]}
        mask = batch.loss_mask
        out["completion_tokens"] = int(mask.sum())
        results = {}
        for precision in ("fp32", "bf16"):
            trainer = fp32 if precision == "fp32" else trainer_for(cfg, reward, model_dir, "bf16", tmp)
            if precision == "bf16":
                timer = PhaseTimer()
                trainer.rollout(qids, timer)  # the same queries, sampled by the bf16 copy: its time only
                out["generate_s"]["bf16"] = timer.seconds["generate"]
                out["sampler_against_scorer"] = sampler_gap(trainer, batch)
            start = time.perf_counter()
            ref = trainer.frozen_logprobs(trainer.ref_scorer, batch)
            reference_s = time.perf_counter() - start
            logprobs, grad, stats = loss_and_grad(trainer, batch, ref)
            trainer.update(batch, PhaseTimer())  # one real optimiser step on this batch
            after = trainer.frozen_logprobs(trainer.scorer, batch)
            kl_after = masked_mean(torch.exp(ref - after) - (ref - after) - 1, mask).item()
            results[precision] = (logprobs, grad)
            out[precision] = {**stats, "reference_s": reference_s, "kl_after_one_update": kl_after}
    (lp32, g32), (lp16, g16) = results["fp32"], results["bf16"]
    diff = (lp16 - lp32).abs()
    out["logprob_abs_diff_max"] = masked_max(diff, mask)
    out["logprob_abs_diff_mean"] = masked_mean(diff, mask).item()
    g32, g16 = g32.double(), g16.double()  # float32 sums over 135M entries drift past a cosine of 1
    out["grad_cosine"] = (g32 @ g16 / (g32.norm() * g16.norm())).item()
    out["grad_norm_rel_diff"] = ((g16.norm() - g32.norm()) / g32.norm()).item()
    out.update(provenance({"config": args.config, "model": model_dir}))
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(out, indent=1))
    print(json.dumps({k: v for k, v in out.items() if k != "queries"}, indent=1))


if __name__ == "__main__":
    main()
