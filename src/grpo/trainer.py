"""The GRPO loop: the one place where the policy, the reward and the search engine meet.

One step reads top to bottom:
search contexts -> build prompts -> sample G completions each -> score with the engine -> advantages
-> (reference log-probs) -> mu passes of clipped policy-gradient updates -> log, checkpoint.
"""
from __future__ import annotations

import copy
import json
import time
import warnings
from collections import defaultdict
from dataclasses import asdict
from pathlib import Path

import torch
from torch.utils.tensorboard import SummaryWriter
from tqdm.auto import tqdm

from grpo.batch import QuerySampler, StepBatch, concat_batches, make_prompts, select_groups
from grpo.checkpoint import (
    TrainingState,
    adapter_state,
    check_output_dir,
    clear_output_dir,
    export_state_dict,
    load_latest_checkpoint,
    save_checkpoint,
    stretch_schedule,
    write_run_config,
)
from grpo.config import GRPOConfig
from grpo.host import keep_freed_memory, use_cores
from grpo.guards import GracefulStop, check_skipped_step, first_nonfinite
from grpo.logs import PhaseTimer, completions_markdown, flat_hparams, log_scalars, step_metrics
from grpo.model_card import write_model_card, write_settings
from grpo.objective import LossNormalizer, group_advantages, grpo_loss, masked_mean, zero_std_groups
from grpo.provenance import provenance
from grpo.schedule import seed_everything, warmup_cosine
from grpo.validation import reward_summary, validation_reward
from policy import (
    LoraConfig,
    PromptConfig,
    apply_lora,
    completion_logprobs,
    parse_completion,
    sample_groups,
    save_adapter,
)
from policy.precision import SamplingCopy, autocast
from reward import SearchReward


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
        self.rollout_policy = SamplingCopy(model, cfg.precision)
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
        return make_prompts(self.tokenizer, self.reward, qids, self.prompt_cfg)

    def rollout(self, qids: list[str], timer: PhaseTimer) -> StepBatch:
        cfg, G = self.cfg, self.cfg.num_generations
        with timer("search"):
            queries, prompts, contexts = self.make_prompts(qids)
        self.model.eval()
        with timer("generate"):
            rollout = sample_groups(
                self.rollout_policy.model(), self.tokenizer, prompts, G, max_new_tokens=cfg.max_completion_length,
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
        with autocast(self.cfg.precision, self.device):  # the forward only: backward follows autocast's choices
            return completion_logprobs(
                model, r.prompt_ids[g0:g1], r.completion_ids[rows], r.completion_mask[rows],
                self.cfg.num_generations, temperature=self.cfg.temperature, return_entropy=return_entropy,
            )

    @torch.inference_mode()
    def frozen_logprobs(self, model, batch: StepBatch) -> torch.Tensor:
        """``[B, T]`` log-probs under a model that is not being differentiated (reference or old policy)."""
        return torch.cat([self.logprobs(model, batch, g0, g1, rows) for g0, g1, rows in self.micro_batches(batch)])

    def update(self, batch: StepBatch, timer: PhaseTimer) -> tuple[dict[str, float], str | None]:
        """Learn from one batch. Returns the step's statistics and why it was skipped (None: it was applied).

        A step whose rewards, loss or gradients are not finite is skipped: that optimiser pass never runs,
        so neither the weights nor the Adam moments see the NaN. The schedule moves on either way."""
        totals: dict[str, float] = defaultdict(float)
        reason = first_nonfinite(rewards=batch.parts.total, advantages=batch.advantages)
        if reason is None:
            ref_logprobs = None
            if self.cfg.beta > 0:
                with timer("reference"):
                    ref_logprobs = self.frozen_logprobs(self.ref_model, batch)
            self.model.train()
            with timer("update"):
                reason = self.optimise(batch, ref_logprobs, totals)
        self.optimizer.zero_grad(set_to_none=True)
        with warnings.catch_warnings():  # a skipped first step would have torch warn about the call order
            warnings.filterwarnings("ignore", "Detected call of", UserWarning)
            self.scheduler.step()
        self.model.eval()
        return dict(totals), reason

    def optimise(self, batch: StepBatch, ref_logprobs: torch.Tensor | None, totals: dict[str, float]) -> str | None:
        """``num_iterations`` clipped policy-gradient passes over ``batch``, accumulating statistics into
        ``totals``; stops before the optimiser sees a non-finite loss or gradient and returns which."""
        cfg = self.cfg
        # The ratio's denominator. The first pass runs before any optimiser step, so its detached log-probs
        # are the sampling policy's: no separate old-log-prob pass, for any num_iterations.
        old_logprobs: torch.Tensor | None = None
        norm = LossNormalizer(
            num_sequences=batch.loss_mask.shape[0],
            num_tokens=int(batch.loss_mask.sum().item()),
            max_completion_length=cfg.max_completion_length,
            num_micro_batches=len(range(0, len(batch.prompts), cfg.micro_batch_groups)),
        )
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
                if first_nonfinite(loss=loss):
                    return "loss"
                loss.backward()
                share = (g1 - g0) / len(batch.prompts) / cfg.num_iterations
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

    # ------------------------------------------------------------------ evaluation

    def validation_reward(self) -> dict[str, float]:
        """See :func:`grpo.validation.validation_reward`; {} without validation queries."""
        if not self.valid_qids:
            return {}
        _, prompts, _ = self.make_prompts(self.valid_qids)
        return validation_reward(self.rollout_policy.model(), self.tokenizer, self.reward, self.prompt_cfg, self.cfg,
                                 self.valid_qids, prompts)

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
        write_settings(path, self.run_config)
        return path

    def resume(self) -> bool:
        """Restore the newest readable checkpoint of output_dir (False: none there)."""
        found = load_latest_checkpoint(self.output_dir, self.model, self.optimizer, self.scheduler, self.generator)
        if found is None:
            return False
        path, restored = found
        self.state.__dict__.update(restored.__dict__)
        print(f"resumed from {path} at step {self.state.step}")
        if restored.max_steps and restored.max_steps != self.cfg.max_steps:
            stretch_schedule(self.optimizer, self.cfg, self.state.step, restored.max_steps)
        return True

    # ------------------------------------------------------------------ the loop

    def start(self, resume: bool, overwrite: bool) -> SummaryWriter:
        """Prepare the output folder (refuse another run's checkpoints, or clear them), resume, archive the
        config; return the TensorBoard writer, which drops events logged after the checkpoint resumed from."""
        use_cores()
        keep_freed_memory()
        check_output_dir(self.output_dir, resume, overwrite)
        if overwrite and not resume:
            clear_output_dir(self.output_dir)
        self.output_dir.mkdir(parents=True, exist_ok=True)
        if resume and not self.resume():
            print(f"--resume: no checkpoint in {self.output_dir}, starting fresh")
        write_run_config(self.output_dir, self.run_config, self.state.step)
        self.state.max_steps = self.cfg.max_steps
        # A killed run may have logged steps past its last checkpoint; the resumed run logs them again.
        return SummaryWriter(str(self.output_dir / "tb"), purge_step=self.state.step + 1 if self.state.step else None)

    def train(self, resume: bool = False, overwrite: bool = False) -> dict:
        """Run to ``max_steps`` (or ``max_time_s``) and validate; returns the before/after rewards.

        On SIGTERM/SIGINT the current step finishes, a checkpoint is written and the result is
        ``{"stopped_by": <signal>, "step": ..., "checkpoint": ...}`` instead (no final validation)."""
        cfg = self.cfg
        writer = self.start(resume, overwrite)
        if self.state.step == 0 or "valid/reward/total@start" not in self.state.history:
            before = self.validation_reward()
            self.state.history.update({f"{k}@start": v for k, v in before.items()})
            log_scalars(writer, before, 0)
            print("valid reward before training: " + reward_summary(before))

        bar = tqdm(total=cfg.max_steps, initial=self.state.step, desc="grpo", dynamic_ncols=True)
        started = time.perf_counter()
        with GracefulStop() as stop:
            while self.state.step < cfg.max_steps:
                timer, t0 = PhaseTimer(), time.perf_counter()
                batch = self.rollout_with_dynamic_sampling(timer)
                update_stats, skipped = self.update(batch, timer)
                self.state.step += 1
                step, step_time = self.state.step, time.perf_counter() - t0
                stopping = stop.received  # read once: a signal from here on is handled after the next step
                check_skipped_step(skipped, self.state, cfg.max_nonfinite_steps, step)
                if step % cfg.logging_steps == 0 or skipped:
                    lr = self.scheduler.get_last_lr()[0]
                    metrics = step_metrics(batch, update_stats, timer.seconds, step_time, lr)
                    log_scalars(writer, {**metrics, "train/skipped_steps": self.state.skipped_steps}, step)
                if step % cfg.log_completions_steps == 0:
                    writer.add_text("completions", completions_markdown(batch), step)
                out_of_time = cfg.max_time_s is not None and time.perf_counter() - started >= cfg.max_time_s
                if step % cfg.save_steps == 0 or step == cfg.max_steps or out_of_time or stopping:
                    path = self.save()
                bar.update(1)
                phases = " ".join(f"{k}={v:.1f}s" for k, v in timer.seconds.items())
                bar.set_postfix_str(f"reward={batch.parts.total.mean().item():.3f} step={step_time:.1f}s ({phases})")
                if stopping:
                    bar.close()
                    writer.close()
                    return {"stopped_by": stopping, "step": step, "checkpoint": str(path)}
                if out_of_time:
                    print(f"\nmax_time_s={cfg.max_time_s:g} reached after step {step}: stopping")
                    break
        bar.close()

        after = self.validation_reward()
        log_scalars(writer, after, self.state.step)
        result = {**self.state.history, **{f"{k}@end": v for k, v in after.items()}}
        writer.add_hparams(flat_hparams(self.run_config), {f"hparam/{k}": v for k, v in result.items() if "total" in k})
        writer.close()
        (self.output_dir / "result.json").write_text(json.dumps({**result, **provenance(self.run_config)}, indent=1))
        print("valid reward after training: " + reward_summary(after))
        return result
