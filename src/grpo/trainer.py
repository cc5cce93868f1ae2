"""The GRPO loop: the one place where the policy, the reward and the search engine meet.

One step reads top to bottom:
search contexts -> build prompts -> sample G completions each -> score with the engine -> advantages
-> (reference log-probs) -> mu passes of clipped policy-gradient updates -> log, checkpoint.
"""
from __future__ import annotations

import json
import time
from contextlib import closing
from dataclasses import asdict, replace
from pathlib import Path

import torch
from torch.nn.parallel import DistributedDataParallel
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
from grpo.distributed import Distributed
from grpo.host import use_cores
from grpo.guards import GracefulStop, check_skipped_step
from grpo.logs import NullWriter, PhaseTimer, completions_markdown, flat_hparams, log_scalars, step_metrics
from grpo.model_card import write_model_card, write_settings
from grpo.objective import group_advantages, zero_std_groups
from grpo.provenance import provenance
from grpo.schedule import adamw, group_generators, seed_everything, warmup_cosine
from grpo.update import PolicyUpdate
from grpo.validation import reward_summary, validation_reward
from policy import (
    CompletionScorer,
    LoraConfig,
    PromptConfig,
    apply_lora,
    parse_completion,
    sample_groups,
    save_adapter,
)
from policy.compiled import compile_decoder_layers
from policy.precision import SamplingCopy, autocast, frozen_copy, record_precision, resolve_precision
from reward import SearchReward


class GRPOTrainer(PolicyUpdate):
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
        dist: Distributed | None = None,
    ):
        self.cfg, self.tokenizer, self.reward, self.prompt_cfg = cfg, tokenizer, reward, prompt_cfg
        self.dist = dist or Distributed()
        self.dist.shard(cfg.num_prompts_per_step)  # fails early, in one line, when the batch does not split
        self.valid_qids = valid_qids[: cfg.eval_queries]
        self.device = next(model.parameters()).device
        # ``auto`` becomes what this device runs, before the copies are made and the run's config is recorded.
        self.cfg = cfg = replace(cfg, precision=resolve_precision(cfg.precision, self.device, "train.precision",
                                                                  log=self.dist.is_main))
        self.generator = seed_everything(cfg.seed, self.device)
        # The reference is the policy before any update; with beta == 0 it is never built.
        self.ref_model = self.ref_scorer = None
        if cfg.beta > 0:
            # Under bf16 its matrix weights are stored in bf16, which autocast would cast them to anyway.
            self.ref_model = frozen_copy(model, cfg.precision)
            self.ref_scorer = CompletionScorer(self.ref_model)
        self.lora_cfg = lora_cfg or LoraConfig()
        if cfg.use_lora:
            apply_lora(model, self.lora_cfg)
        if cfg.gradient_checkpointing:
            model.gradient_checkpointing_enable()
            model.config.use_cache = False
        self.model = model  # the bare policy: sampling, the reference copy and checkpoints use it
        # The differentiated forward goes through this module, under DDP when there are several processes.
        self.scorer = CompletionScorer(model)
        if self.dist.enabled:
            self.scorer = DistributedDataParallel(self.scorer, device_ids=[self.device] if self.device.type == "cuda"
                                                  else None)
        self.rollout_policy = SamplingCopy(model, cfg.precision)
        if cfg.torch_compile:  # after the copies: each compiles its own layers
            for scored in (model, self.ref_model):
                if scored is not None:
                    compile_decoder_layers(scored)
        params = [p for p in model.parameters() if p.requires_grad]
        self.optimizer = adamw(params, cfg.optim, cfg.learning_rate, (cfg.adam_beta1, cfg.adam_beta2),
                               cfg.weight_decay)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lambda s: warmup_cosine(s, cfg.warmup_steps, cfg.max_steps, cfg.min_lr_ratio)
        )
        self.state = TrainingState()
        self.sampler = QuerySampler(train_qids, cfg.seed, self.state)
        self.output_dir = Path(cfg.output_dir)
        self.run_config = record_precision(run_config or {"train": asdict(cfg)}, "train", cfg.precision)

    # ------------------------------------------------------------------ rollouts

    def make_prompts(self, qids: list[str]) -> tuple[list[str], list[str], list[list[str]]]:
        """Query texts, chat prompts and the context titles they show, one per query id."""
        return make_prompts(self.tokenizer, self.reward, qids, self.prompt_cfg)

    def rollout(self, qids: list[str], timer: PhaseTimer, round_: int = 0, first_group: int = 0) -> StepBatch:
        """Sample and score this process's groups; ``first_group``: the first one's index in the step's draw.

        Advantages are per group here; :meth:`rollout_with_dynamic_sampling` recomputes them over the final
        batch of every process (``scale_rewards = "batch"`` needs them all)."""
        cfg, G = self.cfg, self.cfg.num_generations
        with timer("search"):
            queries, prompts, contexts = self.make_prompts(qids)
        self.model.eval()
        with timer("generate"), autocast(cfg.precision, self.device):
            rollout = sample_groups(
                self.rollout_policy.model(), self.tokenizer, prompts, G, max_new_tokens=cfg.max_completion_length,
                temperature=cfg.temperature, top_p=cfg.top_p,
                generator=group_generators(cfg.seed, self.state.step, round_, first_group, len(qids), self.device),
                compiled=cfg.torch_compile,
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
        """Sample the step's batch; with dynamic sampling, replace groups that carry no signal (DAPO).

        Every process draws the whole batch from the same sampler and keeps its own slice of groups; refills are
        drawn the same way, so the groups, and the samples each gets, are those of a single process."""
        n, G, dist = self.cfg.num_prompts_per_step, self.cfg.num_generations, self.dist
        mine = dist.shard(n)
        batch = self.rollout(self.sampler.take(n)[mine], timer, 0, mine.start)
        zero_std = dist.gather(zero_std_groups(batch.parts.total, G))
        for round_ in range(1, self.cfg.max_refill_rounds + 1 if self.cfg.dynamic_sampling else 1):
            keep = (~zero_std_groups(batch.parts.total, G)).nonzero().flatten().tolist()
            missing = dist.gather(torch.tensor([len(batch.prompts) - len(keep)]))  # [world_size]
            if missing.sum() == 0:
                break
            draw = self.sampler.take(int(missing.sum()))
            start, count = int(missing[:dist.rank].sum()), int(missing[dist.rank])
            if count:
                extra = self.rollout(draw[start:start + count], timer, round_, start)
                batch = concat_batches(select_groups(batch, keep, G), extra, G)
        batch.zero_std_fraction = zero_std.float().mean().item()  # what sampling gave, before any refill
        rewards = dist.gather(batch.parts.total)  # every process holds n / world_size groups
        rows = dist.shard(len(rewards), "the batch")
        batch.advantages = group_advantages(rewards, G, self.cfg.scale_rewards)[rows]
        return batch

    # ------------------------------------------------------------------ evaluation

    def validation_reward(self) -> dict[str, float]:
        """See :func:`grpo.validation.validation_reward`; {} without validation queries."""
        if not self.valid_qids:
            return {}
        mine = self.dist.share(len(self.valid_qids))
        qids = self.valid_qids[mine]
        _, prompts, _ = self.make_prompts(qids)
        with autocast(self.cfg.precision, self.device):
            return validation_reward(self.rollout_policy.model(), self.tokenizer, self.reward, self.prompt_cfg,
                                     self.cfg, qids, prompts, first_query=mine.start, dist=self.dist)

    # ------------------------------------------------------------------ checkpoints

    def save(self) -> Path:
        """Rank 0 writes ``checkpoint-<step>``; the other processes wait until it is complete."""
        if not self.dist.is_main:
            self.dist.barrier()
            return self.output_dir / f"checkpoint-{self.state.step}"
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
        self.dist.barrier()
        return path

    def resume(self) -> bool:
        """Restore the newest readable checkpoint of output_dir (False: none there)."""
        found = load_latest_checkpoint(self.output_dir, self.model, self.optimizer, self.scheduler, self.generator)
        if found is None:
            return False
        path, restored = found
        self.state.__dict__.update(restored.__dict__)
        if self.dist.is_main:
            print(f"resumed from {path} at step {self.state.step}")
        if restored.max_steps and restored.max_steps != self.cfg.max_steps:
            stretch_schedule(self.optimizer, self.cfg, self.state.step, restored.max_steps)
        return True

    # ------------------------------------------------------------------ the loop

    def start(self, resume: bool, overwrite: bool) -> SummaryWriter:
        """Prepare the output folder (refuse another run's checkpoints, or clear them), resume, archive the
        config; return the TensorBoard writer, which drops events logged after the checkpoint resumed from.
        Rank 0 does the writing; every process resumes from the same checkpoint."""
        use_cores(self.dist.local_world_size)
        check_output_dir(self.output_dir, resume, overwrite)
        with self.dist.main_first():
            if self.dist.is_main and overwrite and not resume:
                clear_output_dir(self.output_dir)
            self.output_dir.mkdir(parents=True, exist_ok=True)
        if resume and not self.resume() and self.dist.is_main:
            print(f"--resume: no checkpoint in {self.output_dir}, starting fresh")
        self.state.max_steps = self.cfg.max_steps
        if not self.dist.is_main:
            return NullWriter()
        write_run_config(self.output_dir, self.run_config, self.state.step)
        # A killed run may have logged steps past its last checkpoint; the resumed run logs them again.
        # A fresh run (step 0) also hides the events of an earlier one in this folder that never checkpointed.
        return SummaryWriter(str(self.output_dir / "tb"), purge_step=self.state.step + 1 if self.state.step else 0)

    def train(self, resume: bool = False, overwrite: bool = False) -> dict:
        """Run to ``max_steps`` (or ``max_time_s``) and validate; returns the before/after rewards.

        On SIGTERM/SIGINT the current step finishes, a checkpoint is written and the result is
        ``{"stopped_by": <signal>, "step": ..., "checkpoint": ...}`` instead (no final validation)."""
        cfg = self.cfg
        # closing: the events reach the disk however the loop ends (a stop, a non-finite run, an error).
        with closing(self.start(resume, overwrite)) as writer:
            if self.state.step == 0 or "valid/reward/total@start" not in self.state.history:
                before = self.validation_reward()
                self.state.history.update({f"{k}@start": v for k, v in before.items()})
                log_scalars(writer, before, 0)
                if self.dist.is_main:
                    print("valid reward before training: " + reward_summary(before))

            bar = tqdm(total=cfg.max_steps, initial=self.state.step, desc="grpo", dynamic_ncols=True,
                       disable=not self.dist.is_main)
            started = time.perf_counter()
            with GracefulStop() as stop:
                while self.state.step < cfg.max_steps:
                    timer, t0 = PhaseTimer(), time.perf_counter()
                    batch = self.rollout_with_dynamic_sampling(timer)
                    update_stats, skipped = self.update(batch, timer)
                    self.state.step += 1
                    step, step_time = self.state.step, time.perf_counter() - t0
                    # Read once (a signal from here on is handled after the next step) and agreed by all processes:
                    # torchrun passes a signal to each, and they must stop after the same step.
                    out_of_time = cfg.max_time_s is not None and time.perf_counter() - started >= cfg.max_time_s
                    any_signal, out_of_time = self.dist.any(stop.received is not None, out_of_time)
                    stopping = stop.received or ("a signal to another process" if any_signal else None)
                    check_skipped_step(skipped, self.state, cfg.max_nonfinite_steps, step)
                    if step % cfg.logging_steps == 0 or skipped:
                        lr = self.scheduler.get_last_lr()[0]
                        metrics = step_metrics(batch, update_stats, timer.seconds, step_time, lr, self.dist)
                        log_scalars(writer, {**metrics, "train/skipped_steps": self.state.skipped_steps}, step)
                    if step % cfg.log_completions_steps == 0:
                        writer.add_text("completions", completions_markdown(batch), step)
                    if step % cfg.save_steps == 0 or step == cfg.max_steps or out_of_time or stopping:
                        path = self.save()
                    bar.update(1)
                    phases = " ".join(f"{k}={v:.1f}s" for k, v in timer.seconds.items())
                    reward = batch.parts.total.mean().item()
                    bar.set_postfix_str(f"reward={reward:.3f} step={step_time:.1f}s ({phases})")
                    if stopping:
                        bar.close()
                        return {"stopped_by": stopping, "step": step, "checkpoint": str(path)}
                    if out_of_time:
                        if self.dist.is_main:
                            print(f"\nmax_time_s={cfg.max_time_s:g} reached after step {step}: stopping")
                        break
            bar.close()

            after = self.validation_reward()
            log_scalars(writer, after, self.state.step)
            result = {**self.state.history, **{f"{k}@end": v for k, v in after.items()}}
            writer.add_hparams(flat_hparams(self.run_config),
                               {f"hparam/{k}": v for k, v in result.items() if "total" in k})
        if self.dist.is_main:
            (self.output_dir / "result.json").write_text(json.dumps({**result, **provenance(self.run_config)},
                                                                    indent=1))
            print("valid reward after training: " + reward_summary(after))
        return result
