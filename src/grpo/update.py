"""The update phase of a GRPO step: score the batch under the reference and the policy, then take
``num_iterations`` clipped policy-gradient passes, with every loss normaliser taken over all processes.

:class:`PolicyUpdate` holds the update half of :class:`grpo.trainer.GRPOTrainer` (which inherits it); it reads
the trainer's ``cfg``, ``model``, ``scorer``, ``ref_scorer``, ``optimizer``, ``scheduler``, ``dist`` and ``device``.
"""
from __future__ import annotations

import contextlib
import warnings
from collections import defaultdict

import torch

from grpo.batch import StepBatch
from grpo.guards import first_nonfinite
from grpo.logs import PhaseTimer
from grpo.objective import LossNormalizer, grpo_loss, masked_mean
from policy.precision import autocast


class PolicyUpdate:
    def micro_batches(self, batch: StepBatch):
        G, step = self.cfg.num_generations, self.cfg.micro_batch_groups
        n_groups = len(batch.prompts)
        for g0 in range(0, n_groups, step):
            g1 = min(g0 + step, n_groups)
            yield g0, g1, slice(g0 * G, g1 * G)

    def logprobs(self, scorer, batch: StepBatch, g0: int, g1: int, rows: slice, return_entropy: bool = False):
        """Log-probs ``[b, T]`` of groups ``g0:g1`` under ``scorer`` (a :class:`CompletionScorer`, maybe DDP's)."""
        r = batch.rollout
        with autocast(self.cfg.precision, self.device):  # the forward only: backward follows autocast's choices
            return scorer(r.prompt_ids[g0:g1], r.completion_ids[rows], r.completion_mask[rows],
                          self.cfg.num_generations, temperature=self.cfg.temperature, return_entropy=return_entropy)

    @torch.inference_mode()
    def frozen_logprobs(self, scorer, batch: StepBatch) -> torch.Tensor:
        """``[B, T]`` log-probs under a model that is not being differentiated (reference or old policy)."""
        return torch.cat([self.logprobs(scorer, batch, g0, g1, rows) for g0, g1, rows in self.micro_batches(batch)])

    def update(self, batch: StepBatch, timer: PhaseTimer) -> tuple[dict[str, float], str | None]:
        """Learn from one batch. Returns the step's statistics and why it was skipped (None: it was applied).

        A step whose rewards, loss or gradients are not finite is skipped: that optimiser pass never runs,
        so neither the weights nor the Adam moments see the NaN. The schedule moves on either way. Processes
        decide together: one process's NaN reward skips the step everywhere."""
        totals: dict[str, float] = defaultdict(float)
        reason = first_nonfinite(rewards=batch.parts.total, advantages=batch.advantages)
        if self.dist.any(reason is not None)[0] and reason is None:
            reason = "rewards (in another process)"
        if reason is None:
            ref_logprobs = None
            if self.cfg.beta > 0:
                with timer("reference"):
                    ref_logprobs = self.frozen_logprobs(self.ref_scorer, batch)
            self.model.train()
            with timer("update"):
                reason = self.optimise(batch, ref_logprobs, totals)
        self.optimizer.zero_grad(set_to_none=True)
        with warnings.catch_warnings():  # a skipped first step would have torch warn about the call order
            warnings.filterwarnings("ignore", "Detected call of", UserWarning)
            self.scheduler.step()
        self.model.eval()
        # Each process holds its groups' share of a statistic; the gradient norm is the same on all of them.
        return {**self.dist.sum_values({k: v for k, v in totals.items() if k != "grad_norm"}),
                **{k: v for k, v in totals.items() if k == "grad_norm"}}, reason

    def loss_normalizer(self, batch: StepBatch) -> LossNormalizer:
        """The totals every loss share divides by: of the whole step, over all processes."""
        mask, cfg = batch.loss_mask, self.cfg
        sequences, tokens, micro_batches = self.dist.sum(torch.tensor(
            [mask.shape[0], int(mask.sum().item()), len(range(0, len(batch.prompts), cfg.micro_batch_groups))]
        )).tolist()
        return LossNormalizer(num_sequences=sequences, num_tokens=tokens,
                              max_completion_length=cfg.max_completion_length, num_micro_batches=micro_batches)

    def optimise(self, batch: StepBatch, ref_logprobs: torch.Tensor | None, totals: dict[str, float]) -> str | None:
        """``num_iterations`` clipped policy-gradient passes over ``batch``, accumulating statistics into
        ``totals``; stops before the optimiser sees a non-finite loss or gradient and returns which."""
        cfg, world = self.cfg, self.dist.world_size
        # The ratio's denominator. The first pass runs before any optimiser step, so its detached log-probs
        # are the sampling policy's: no separate old-log-prob pass, for any num_iterations.
        old_logprobs: torch.Tensor | None = None
        norm = self.loss_normalizer(batch)
        n_groups = norm.num_sequences // cfg.num_generations
        micro_batches = list(self.micro_batches(batch))
        for _ in range(cfg.num_iterations):
            self.optimizer.zero_grad(set_to_none=True)
            first_pass = []
            for i, (g0, g1, rows) in enumerate(micro_batches):
                # DDP all-reduces the gradients once per pass, in the last micro-batch's backward.
                last = i == len(micro_batches) - 1
                sync = self.scorer.no_sync() if self.dist.enabled and not last else contextlib.nullcontext()
                with sync:
                    logprobs, entropy = self.logprobs(self.scorer, batch, g0, g1, rows, return_entropy=True)
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
                    # With several processes every one must reach the all-reduce: a NaN loss travels into the
                    # gradients of all of them, and the gradient check below skips the step everywhere.
                    if first_nonfinite(loss=loss) and not self.dist.enabled:
                        return "loss"
                    # DDP averages gradients over processes; the normaliser is global, so undo the average.
                    (loss * world).backward()
                share = (g1 - g0) / n_groups / cfg.num_iterations
                totals["loss"] += loss.item() / cfg.num_iterations
                totals["entropy"] += masked_mean(entropy, batch.loss_mask[rows]).item() * share
                for k, v in stats.items():
                    totals[k] += v.item() * share
            grad_norm = torch.nn.utils.clip_grad_norm_(
                [p for p in self.model.parameters() if p.requires_grad], cfg.max_grad_norm
            )
            if first_nonfinite(gradients=grad_norm):
                return "gradients"
            totals["grad_norm"] += grad_norm.item() / cfg.num_iterations
            self.optimizer.step()
            if old_logprobs is None:
                old_logprobs = torch.cat(first_pass)
        return None
