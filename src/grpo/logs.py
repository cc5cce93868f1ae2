"""What a step writes to TensorBoard: scalars, a completions table, hparams."""
from __future__ import annotations

import time
from collections import defaultdict
from contextlib import contextmanager

from torch.utils.tensorboard import SummaryWriter

import torch

from grpo.batch import StepBatch
from grpo.distributed import Distributed
from reward import PART_NAMES, RULES, RewardParts


class PhaseTimer:
    """Wall seconds per phase of a step, for the dashboard and the progress line."""

    def __init__(self):
        self.seconds: dict[str, float] = defaultdict(float)

    @contextmanager
    def __call__(self, phase: str):
        start = time.perf_counter()
        yield
        self.seconds[phase] += time.perf_counter() - start


class NullWriter:
    """What processes other than rank 0 log to: nothing."""

    def add_scalar(self, *args, **kwargs) -> None: ...
    def add_text(self, *args, **kwargs) -> None: ...
    def add_hparams(self, *args, **kwargs) -> None: ...
    def close(self) -> None: ...


def gathered(batch: StepBatch, dist: Distributed) -> tuple[RewardParts, torch.Tensor, torch.Tensor, int]:
    """The reward parts, completion lengths ``[B]`` and truncation flags ``[B]`` of every process's completions
    (rank order), and the number of prompts: what the step's statistics are taken over."""
    parts, r = batch.parts, batch.rollout
    lengths, truncated = r.completion_mask.float().sum(dim=1), r.truncated
    if not dist.enabled:
        return parts, lengths, truncated, len(batch.prompts)
    violated = torch.tensor([[rule in v for rule in RULES] for v in parts.violations], dtype=torch.uint8)
    violated = dist.gather(violated).bool()
    parts = RewardParts(*(dist.gather(getattr(parts, n)) for n in ("relevance", "coverage", "deep", "rules", "total")),
                        violations=[[rule for rule, on in zip(RULES, row) if on] for row in violated.tolist()])
    return parts, dist.gather(lengths), dist.gather(truncated), len(batch.prompts) * dist.world_size


def step_metrics(batch: StepBatch, update: dict[str, float], phase_seconds: dict[str, float], step_time: float,
                 lr: float, dist: Distributed | None = None) -> dict[str, float]:
    """The step's TensorBoard scalars, over every process's completions. Call it on every process."""
    parts, lengths, truncated, n_prompts = gathered(batch, dist or Distributed())
    m = {f"reward/{n}/mean": getattr(parts, n).mean().item() for n in PART_NAMES}
    m.update({f"reward/{n}/std": getattr(parts, n).std().item() for n in PART_NAMES})
    m["frac_reward_zero_std"] = batch.zero_std_fraction
    m["completions/mean_length"] = lengths.mean().item()
    m["completions/max_length"] = lengths.max().item()
    m["completions/truncated_fraction"] = truncated.float().mean().item()
    m["rules/violation_rate"] = sum(bool(v) for v in parts.violations) / len(parts.violations)
    for rule in RULES:
        m[f"rules/{rule}"] = sum(rule in v for v in parts.violations) / len(parts.violations)
    for k, v in update.items():
        m[f"train/{k}"] = v
    m["train/learning_rate"] = lr
    for phase, seconds in phase_seconds.items():
        m[f"time/{phase}_s"] = seconds
    m["time/step_s"] = step_time
    m["time/tokens_per_s"] = lengths.sum().item() / step_time  # completion tokens
    m["time/prompts_per_hour"] = 3600 * n_prompts / step_time
    return m


def log_scalars(writer: SummaryWriter, metrics: dict[str, float], step: int) -> None:
    for k, v in metrics.items():
        writer.add_scalar(k, v, step)


def completions_markdown(batch: StepBatch, max_groups: int = 2) -> str:
    G = batch.rollout.group_size
    lines = []
    for g in range(min(max_groups, len(batch.qids))):
        lines.append(f"**query** `{batch.queries[g]}`\n\n**context**: " + " | ".join(batch.contexts[g]))
        lines.append("\n| completion | total | relevance | coverage | rules |\n|---|---|---|---|---|")
        for b in range(g * G, (g + 1) * G):
            p = batch.parts
            text = batch.rollout.texts[b].replace("\n", " / ").replace("|", "\\|")
            lines.append(f"| {text} | {p.total[b]:.3f} | {p.relevance[b]:.3f} | {p.coverage[b]:.3f} "
                         f"| {p.rules[b]:.2f} {','.join(p.violations[b])} |")
        lines.append("")
    return "\n".join(lines)


def flat_hparams(run_config: dict) -> dict:
    flat = {}
    for section, values in run_config.items():
        if isinstance(values, dict):
            for k, v in values.items():
                flat[f"{section}.{k}"] = v if isinstance(v, (int, float, str, bool)) else str(v)
    return flat
