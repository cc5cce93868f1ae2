"""The GRPO loop: the one place where the policy, the reward and the search engine meet.

One step reads top to bottom:
search contexts -> build prompts -> sample G completions each -> score with the engine -> advantages
-> (reference log-probs) -> mu passes of clipped policy-gradient updates -> log, checkpoint.
"""
from __future__ import annotations

import copy
import json
import math
import os
import random
import time
from collections import defaultdict
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
from torch.utils.tensorboard import SummaryWriter
from tqdm.auto import tqdm

from grpo.batch import StepBatch, concat_batches, select_groups
from grpo.checkpoint import TrainingState, checkpoint_dirs, load_checkpoint, save_checkpoint
from grpo.config import GRPOConfig
from grpo.model_card import write_model_card
from grpo.logs import completions_markdown, flat_hparams, log_scalars, step_metrics
from grpo.objective import LossNormalizer, group_advantages, grpo_loss, masked_mean, zero_std_groups
from policy import (
    LoraConfig,
    PromptConfig,
    apply_lora,
    build_prompt,
    completion_logprobs,
    merge_lora,
    parse_completion,
    sample_groups,
    save_adapter,
)
from reward import PART_NAMES, SearchReward


# ----------------------------------------------------------------------------- data order


class QuerySampler:
    """Endless, seeded, resumable passes over the training query ids."""

    def __init__(self, qids: list[str], seed: int, state: TrainingState):
        if not qids:
            raise ValueError("no training queries (are the split and the judgments empty?)")
        self.qids, self.seed, self.state = sorted(qids), seed, state
        if not state.data_order:
            self._shuffle()

    def _shuffle(self) -> None:
        order = list(self.qids)
        random.Random(self.seed + self.state.epoch).shuffle(order)
        self.state.data_order, self.state.data_cursor = order, 0

    def take(self, n: int) -> list[str]:
        out = []
        while len(out) < n:
            if self.state.data_cursor >= len(self.state.data_order):
                self.state.epoch += 1
                self._shuffle()
            out.append(self.state.data_order[self.state.data_cursor])
            self.state.data_cursor += 1
        return out


# ----------------------------------------------------------------------------- small helpers


class PhaseTimer:
    """Wall seconds per phase of a step, for the dashboard and the progress line."""

    def __init__(self):
        self.seconds: dict[str, float] = defaultdict(float)

    @contextmanager
    def __call__(self, phase: str):
        start = time.perf_counter()
        yield
        self.seconds[phase] += time.perf_counter() - start


def warmup_cosine(step: int, warmup: int, total: int, min_ratio: float) -> float:
    """LR multiplier: linear warm-up to 1, then cosine decay to ``min_ratio`` at ``total``."""
    if step < warmup:
        return (step + 1) / (warmup + 1)
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


def seed_everything(seed: int, device: torch.device | str = "cpu") -> torch.Generator:
    """Seed every global RNG; return the sampling generator, on the policy's device so draws stay there."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    return torch.Generator(device=device).manual_seed(seed)


def export_state_dict(model, use_lora: bool) -> dict[str, torch.Tensor]:
    """The plain HF state dict of the policy, with LoRA merged into a copy (training goes on unmerged)."""
    if not use_lora:
        return {k: v.detach() for k, v in model.state_dict().items()}
    merged = copy.deepcopy(model)
    merge_lora(merged)
    return merged.state_dict()


def adapter_state(model) -> dict[str, torch.Tensor]:
    return {n: p.detach() for n, p in model.named_parameters() if p.requires_grad}


def _reward_summary(metrics: dict[str, float]) -> str:
    nan = float("nan")
    return (f"greedy {metrics.get('valid/reward/total', nan):.4f}, "
            f"sampled {metrics.get('valid/reward_sampled/total', nan):.4f}")


# ----------------------------------------------------------------------------- the trainer


class GRPOTrainer:
    def __init__(
        self,
        cfg: GRPOConfig,
        model,
        tokenizer,
        reward: SearchReward,
        prompt_cfg: PromptConfig,
        train_qids: list[str],
        valid_qids: list[str],
        lora_cfg: LoraConfig | None = None,
        run_config: dict | None = None,
    ):
        self.cfg, self.tokenizer, self.reward, self.prompt_cfg = cfg, tokenizer, reward, prompt_cfg
        self.valid_qids = valid_qids[: cfg.eval_queries]
        self.device = next(model.parameters()).device
        self.generator = seed_everything(cfg.seed, self.device)
        # The reference is the policy before any update; with beta == 0 it is never built.
        self.ref_model = None
        if cfg.beta > 0:
            self.ref_model = copy.deepcopy(model).eval().requires_grad_(False)
        self.lora_cfg = lora_cfg or LoraConfig()
        if cfg.use_lora:
            apply_lora(model, self.lora_cfg)
        if cfg.gradient_checkpointing:
            model.gradient_checkpointing_enable()
            model.config.use_cache = False
        self.model = model
        params = [p for p in model.parameters() if p.requires_grad]
        self.optimizer = torch.optim.AdamW(
            params, lr=cfg.learning_rate, betas=(cfg.adam_beta1, cfg.adam_beta2), weight_decay=cfg.weight_decay
        )
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lambda s: warmup_cosine(s, cfg.warmup_steps, cfg.max_steps, cfg.min_lr_ratio)
        )
        self.state = TrainingState()
        self.sampler = QuerySampler(train_qids, cfg.seed, self.state)
        self.output_dir = Path(cfg.output_dir)
        self.run_config = run_config or {"train": asdict(cfg)}

    # ------------------------------------------------------------------ rollouts

    def make_prompts(self, qids: list[str]) -> tuple[list[str], list[str], list[list[str]]]:
        """Query texts, chat prompts and the context titles they show, one per query id."""
        contexts = self.reward.context(qids, self.prompt_cfg.context_k)
        queries = [self.reward.dataset.queries[q] for q in qids]
        prompts = [build_prompt(self.tokenizer, q, c, self.prompt_cfg) for q, c in zip(queries, contexts)]
        return queries, prompts, contexts

    def rollout(self, qids: list[str], timer: PhaseTimer) -> StepBatch:
        cfg, G = self.cfg, self.cfg.num_generations
        with timer("search"):
            queries, prompts, contexts = self.make_prompts(qids)
        self.model.eval()
        with timer("generate"):
            rollout = sample_groups(
                self.model, self.tokenizer, prompts, G, max_new_tokens=cfg.max_completion_length,
                temperature=cfg.temperature, top_p=cfg.top_p, generator=self.generator,
            )
        with timer("reward"):
            expansions = [parse_completion(t, self.prompt_cfg.num_expansions) for t in rollout.texts]
            parts = self.reward.score([q for q in qids for _ in range(G)], expansions)
        advantages = group_advantages(parts.total, G, cfg.scale_rewards)
        loss_mask = rollout.completion_mask.float()
        if cfg.mask_truncated_completions:
            loss_mask = loss_mask * (~rollout.truncated).float().unsqueeze(1)
        zero_std = zero_std_groups(parts.total, G)
        return StepBatch(qids, queries, prompts, contexts, rollout, parts, advantages, loss_mask,
                         zero_std.float().mean().item())

    def rollout_with_dynamic_sampling(self, timer: PhaseTimer) -> StepBatch:
        """Sample a batch; with dynamic sampling, replace groups that carry no signal (DAPO)."""
        n = self.cfg.num_prompts_per_step
        batch = self.rollout(self.sampler.take(n), timer)
        if not self.cfg.dynamic_sampling:
            return batch
        G = self.cfg.num_generations
        first_zero_std = batch.zero_std_fraction
        for _ in range(self.cfg.max_refill_rounds):
            keep = (~zero_std_groups(batch.parts.total, G)).nonzero().flatten().tolist()
            if len(keep) == n:
                break
            extra = self.rollout(self.sampler.take(n - len(keep)), timer)
            batch = concat_batches(select_groups(batch, keep, G), extra, G)
        batch.zero_std_fraction = first_zero_std  # what sampling gave, before the refill
        # Recomputed over the final batch: with scale_rewards="batch" the std spans all kept groups.
        batch.advantages = group_advantages(batch.parts.total, G, self.cfg.scale_rewards)
        return batch

    # ------------------------------------------------------------------ log-probs and update

    def micro_batches(self, batch: StepBatch):
        G, step = self.cfg.num_generations, self.cfg.micro_batch_groups
        n_groups = len(batch.prompts)
        for g0 in range(0, n_groups, step):
            g1 = min(g0 + step, n_groups)
            yield g0, g1, slice(g0 * G, g1 * G)

    def logprobs(self, model, batch: StepBatch, g0: int, g1: int, rows: slice, return_entropy: bool = False):
        r = batch.rollout
        return completion_logprobs(
            model, r.prompt_ids[g0:g1], r.completion_ids[rows], r.completion_mask[rows],
            self.cfg.num_generations, temperature=self.cfg.temperature, return_entropy=return_entropy,
        )

    @torch.inference_mode()
    def frozen_logprobs(self, model, batch: StepBatch) -> torch.Tensor:
        """``[B, T]`` log-probs under a model that is not being differentiated (reference or old policy)."""
        return torch.cat([self.logprobs(model, batch, g0, g1, rows) for g0, g1, rows in self.micro_batches(batch)])

    def update(self, batch: StepBatch, timer: PhaseTimer) -> dict[str, float]:
        cfg = self.cfg
        ref_logprobs = None
        if cfg.beta > 0:
            with timer("reference"):
                ref_logprobs = self.frozen_logprobs(self.ref_model, batch)
        # The ratio's denominator. The first pass runs before any optimiser step, so its detached log-probs
        # are the sampling policy's: no separate old-log-prob pass, for any num_iterations.
        old_logprobs: torch.Tensor | None = None
        norm = LossNormalizer(
            num_sequences=batch.loss_mask.shape[0],
            num_tokens=int(batch.loss_mask.sum().item()),
            max_completion_length=cfg.max_completion_length,
        )
        self.model.train()
        totals: dict[str, float] = defaultdict(float)
        with timer("update"):
            for _ in range(cfg.num_iterations):
                self.optimizer.zero_grad(set_to_none=True)
                first_pass = []
                for g0, g1, rows in self.micro_batches(batch):
                    logprobs, entropy = self.logprobs(self.model, batch, g0, g1, rows, return_entropy=True)
                    if old_logprobs is None:
                        first_pass.append(logprobs.detach())
                        old = first_pass[-1]  # ratio 1: the exact on-policy gradient
                    else:
                        old = old_logprobs[rows]
                    ref = None if ref_logprobs is None else ref_logprobs[rows]
                    loss, stats = grpo_loss(
                        logprobs, old, ref, batch.advantages[rows].to(logprobs.device), batch.loss_mask[rows], norm,
                        loss_type=cfg.loss_type, epsilon=cfg.epsilon, epsilon_high=cfg.epsilon_high,
                        beta=cfg.beta, kl_estimator=cfg.kl_estimator,
                    )
                    loss.backward()
                    share = (g1 - g0) / len(batch.prompts) / cfg.num_iterations
                    totals["loss"] += loss.item() / cfg.num_iterations
                    totals["entropy"] += masked_mean(entropy, batch.loss_mask[rows]).item() * share
                    for k, v in stats.items():
                        totals[k] += v.item() * share
                grad_norm = torch.nn.utils.clip_grad_norm_(
                    [p for p in self.model.parameters() if p.requires_grad], cfg.max_grad_norm
                )
                totals["grad_norm"] += grad_norm.item() / cfg.num_iterations
                self.optimizer.step()
                if old_logprobs is None:
                    old_logprobs = torch.cat(first_pass)
        self.scheduler.step()
        self.model.eval()
        return dict(totals)

    # ------------------------------------------------------------------ evaluation

    @torch.inference_mode()
    def validation_reward(self) -> dict[str, float]:
        """Mean reward parts on the validation queries, two ways.

        ``valid/reward``: greedy expansions, what serving would get. ``valid/reward_sampled``:
        ``eval_samples_per_query`` samples at the training temperature, the quantity GRPO optimises; a fixed
        seed makes the before/after numbers comparable (and leaves the training RNG untouched).
        """
        if not self.valid_qids:
            return {}
        self.model.eval()
        cfg, names = self.cfg, PART_NAMES
        _, prompts, _ = self.make_prompts(self.valid_qids)
        parts = self._score_samples(prompts, 1, temperature=0.0)
        metrics = {f"valid/reward/{n}": getattr(parts, n).mean().item() for n in names}
        if cfg.eval_samples_per_query > 0:
            parts = self._score_samples(prompts, cfg.eval_samples_per_query, temperature=cfg.temperature,
                                        generator=torch.Generator(self.device).manual_seed(cfg.seed + 1))
            metrics.update({f"valid/reward_sampled/{k}": getattr(parts, k).mean().item() for k in names})
        return metrics

    def _score_samples(self, prompts: list[str], n: int, temperature: float, generator=None):
        """Reward parts ``[len(valid_qids) * n]`` of ``n`` completions per validation prompt."""
        rollout = sample_groups(self.model, self.tokenizer, prompts, n, max_new_tokens=self.cfg.max_completion_length,
                                temperature=temperature, top_p=self.cfg.top_p, generator=generator)
        expansions = [parse_completion(t, self.prompt_cfg.num_expansions) for t in rollout.texts]
        return self.reward.score([q for q in self.valid_qids for _ in range(n)], expansions)

    # ------------------------------------------------------------------ checkpoints

    def save(self) -> Path:
        path = save_checkpoint(
            self.output_dir, export_state_dict(self.model, self.cfg.use_lora), self.model, self.tokenizer,
            self.optimizer, self.scheduler, self.generator, self.state,
            adapter_state=adapter_state(self.model) if self.cfg.use_lora else None,
            save_total_limit=self.cfg.save_total_limit,
        )
        if self.cfg.use_lora:
            # The adapter alone (a few MB) is what travels back from a rented GPU; policy.load_adapter applies it.
            save_adapter(self.model, path / "adapter.safetensors", self.lora_cfg)
        write_model_card(path, self.run_config, self.state.step, self.state.history, lora=self.cfg.use_lora)
        return path

    def resume(self) -> bool:
        found = checkpoint_dirs(self.output_dir)
        if not found:
            return False
        restored = load_checkpoint(found[-1], self.model, self.optimizer, self.scheduler, self.generator)
        self.state.__dict__.update(restored.__dict__)
        print(f"resumed from {found[-1]} at step {self.state.step}")
        if restored.max_steps and restored.max_steps != self.cfg.max_steps:
            self._stretch_schedule(restored.max_steps)
        return True

    def _stretch_schedule(self, old_max_steps: int) -> None:
        """Follow the new ``max_steps`` from the next step on: the cosine is a function of the horizon, and
        the optimizer would otherwise take one more step at the old schedule's rate, then jump."""
        cfg, step = self.cfg, self.state.step
        old_lr = self.optimizer.param_groups[0]["lr"]
        for group in self.optimizer.param_groups:
            group["lr"] = group["initial_lr"] * warmup_cosine(step, cfg.warmup_steps, cfg.max_steps, cfg.min_lr_ratio)
        print(f"--resume: max_steps {old_max_steps} -> {cfg.max_steps}: the learning-rate schedule now decays to "
              f"step {cfg.max_steps}; the next step's rate is {self.optimizer.param_groups[0]['lr']:.3g} "
              f"(the checkpoint's schedule: {old_lr:.3g})")

    def _write_run_config(self) -> None:
        """``config.json`` holds this run's settings; a resumed run that changed them keeps the earlier file
        as ``config.until-step-<N>.json``, so every step's settings stay on record."""
        path = self.output_dir / "config.json"
        text = json.dumps(self.run_config, indent=1, default=str)
        if self.state.step and path.exists() and path.read_text() != text:
            path.rename(self.output_dir / f"config.until-step-{self.state.step}.json")
        path.write_text(text)

    # ------------------------------------------------------------------ the loop

    def train(self, resume: bool = False) -> dict[str, float]:
        cfg = self.cfg
        torch.set_num_threads(os.cpu_count() or 1)
        self.output_dir.mkdir(parents=True, exist_ok=True)
        if resume and not self.resume():
            print(f"--resume: no checkpoint in {self.output_dir}, starting fresh")
        self._write_run_config()
        self.state.max_steps = cfg.max_steps
        writer = SummaryWriter(str(self.output_dir / "tb"))

        if self.state.step == 0 or "valid/reward/total@start" not in self.state.history:
            before = self.validation_reward()
            self.state.history.update({f"{k}@start": v for k, v in before.items()})
            log_scalars(writer, before, 0)
            print("valid reward before training: " + _reward_summary(before))

        bar = tqdm(total=cfg.max_steps, initial=self.state.step, desc="grpo", dynamic_ncols=True)
        started = time.perf_counter()
        while self.state.step < cfg.max_steps:
            timer, t0 = PhaseTimer(), time.perf_counter()
            batch = self.rollout_with_dynamic_sampling(timer)
            update_stats = self.update(batch, timer)
            self.state.step += 1
            step_time = time.perf_counter() - t0

            step = self.state.step
            if step % cfg.logging_steps == 0:
                metrics = step_metrics(batch, update_stats, timer.seconds, step_time, self.scheduler.get_last_lr()[0])
                log_scalars(writer, metrics, step)
            if step % cfg.log_completions_steps == 0:
                writer.add_text("completions", completions_markdown(batch), step)
            out_of_time = cfg.max_time_s is not None and time.perf_counter() - started >= cfg.max_time_s
            if step % cfg.save_steps == 0 or step == cfg.max_steps or out_of_time:
                self.save()
            bar.update(1)
            phases = " ".join(f"{k}={v:.1f}s" for k, v in timer.seconds.items())
            bar.set_postfix_str(f"reward={batch.parts.total.mean().item():.3f} step={step_time:.1f}s ({phases})")
            if out_of_time:
                print(f"\nmax_time_s={cfg.max_time_s:g} reached after step {step}: stopping")
                break
        bar.close()

        after = self.validation_reward()
        log_scalars(writer, after, self.state.step)
        result = {**self.state.history, **{f"{k}@end": v for k, v in after.items()}}
        writer.add_hparams(flat_hparams(self.run_config), {f"hparam/{k}": v for k, v in result.items() if "total" in k})
        writer.close()
        (self.output_dir / "result.json").write_text(json.dumps(result, indent=1))
        print("valid reward after training: " + _reward_summary(after))
        return result
