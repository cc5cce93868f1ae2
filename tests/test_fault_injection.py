"""Fault injection: a run that is killed, preempted, fed NaN, pointed at a used folder or at a damaged
checkpoint must lose no finished work, never write a NaN model, and resume exactly."""
from __future__ import annotations

import math
import os
import re
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from conftest import build_tiny_llama
from grpo.checkpoint import CheckpointError, checkpoint_dirs
from grpo.guards import NonFiniteStepError
from test_grpo_trainer import LetterReward, make_trainer, small_config

TESTS = Path(__file__).parent
SRC = TESTS.parent / "src"


def weights(trainer) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in trainer.model.named_parameters()}


def assert_bit_exact(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    different = [n for n in a if not torch.equal(a[n], b[n])]
    assert not different, different


def reference_run(tmp_path, tokenizer, **overrides) -> dict[str, torch.Tensor]:
    """The weights of the uninterrupted run that an interrupted one must reproduce."""
    trainer = make_trainer(small_config(tmp_path / "reference", **overrides), tokenizer, build_tiny_llama(tokenizer))
    trainer.train()
    return weights(trainer)


def resume(cfg, tokenizer):
    trainer = make_trainer(cfg, tokenizer, build_tiny_llama(tokenizer))
    result = trainer.train(resume=True)
    return trainer, result


def interrupt_during_step(trainer, step: int, action) -> None:
    """Call ``action`` in the update of step ``step + 1`` (after its rollout, before its optimiser step)."""
    real_update = trainer.update

    def update(batch, timer):
        if trainer.state.step == step:
            action()
        return real_update(batch, timer)

    trainer.update = update


# ----------------------------------------------------------------------------- kill -9 and SIGTERM


KILLED_RUN = textwrap.dedent("""
    import os, signal, sys
    from pathlib import Path
    sys.path[:0] = [{tests!r}, {src!r}]
    from conftest import build_tiny_llama, build_tiny_tokenizer
    from test_grpo_trainer import make_trainer, small_config

    tokenizer = build_tiny_tokenizer()
    trainer = make_trainer(small_config(Path({tmp!r}), max_steps=4, save_steps=2), tokenizer,
                           build_tiny_llama(tokenizer))
    real_update = trainer.update

    def update(batch, timer):
        if trainer.state.step == 3:
            os.kill(os.getpid(), signal.SIGKILL)
        return real_update(batch, timer)

    trainer.update = update
    trainer.train()
""")


def scalar_steps(run_dir: Path, tag: str) -> list[int]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run_dir / "tb"))
    acc.Reload()
    return [e.step for e in acc.Scalars(tag)]


@pytest.mark.slow  # a fresh interpreter imports torch and transformers: 5-15 s
def test_kill_9_mid_step_then_resume_is_bit_exact_and_logs_each_step_once(tmp_path, tiny_tokenizer):
    script = KILLED_RUN.format(tests=str(TESTS), src=str(SRC), tmp=str(tmp_path / "killed"))
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert done.returncode == -signal.SIGKILL, done.stderr[-2000:]
    cfg = small_config(tmp_path / "killed", max_steps=4, save_steps=2)
    assert [p.name for p in checkpoint_dirs(cfg.output_dir)] == ["checkpoint-2"]
    assert scalar_steps(Path(cfg.output_dir), "reward/total/mean") == [1, 2, 3]  # step 3 logged, not saved

    resumed, _ = resume(cfg, tiny_tokenizer)
    assert resumed.state.step == 4
    assert_bit_exact(weights(resumed), reference_run(tmp_path, tiny_tokenizer, max_steps=4, save_steps=2))
    # purge_step: the killed run's step 3 is replaced by the resumed run's, not logged twice.
    assert scalar_steps(Path(cfg.output_dir), "reward/total/mean") == [1, 2, 3, 4]


def test_sigterm_finishes_the_step_checkpoints_and_resumes_bit_exact(tmp_path, tiny_tokenizer):
    previous_handler = signal.getsignal(signal.SIGTERM)
    cfg = small_config(tmp_path / "preempted", max_steps=3, save_steps=100)
    trainer = make_trainer(cfg, tiny_tokenizer, build_tiny_llama(tiny_tokenizer))
    interrupt_during_step(trainer, 1, lambda: os.kill(os.getpid(), signal.SIGTERM))
    result = trainer.train()
    assert result["stopped_by"] == "SIGTERM" and result["step"] == 2
    assert [p.name for p in checkpoint_dirs(cfg.output_dir)] == ["checkpoint-2"]  # only because of the signal
    assert not (Path(cfg.output_dir) / "result.json").exists()  # no final validation on the way out
    assert signal.getsignal(signal.SIGTERM) is previous_handler

    resumed, _ = resume(cfg, tiny_tokenizer)
    assert resumed.state.step == 3
    assert_bit_exact(weights(resumed), reference_run(tmp_path, tiny_tokenizer, max_steps=3, save_steps=100))


def test_ctrl_c_stops_after_the_step_and_a_second_one_abandons_it(tmp_path, tiny_tokenizer):
    cfg = small_config(tmp_path / "once", max_steps=3, save_steps=100)
    trainer = make_trainer(cfg, tiny_tokenizer, build_tiny_llama(tiny_tokenizer))
    interrupt_during_step(trainer, 0, lambda: os.kill(os.getpid(), signal.SIGINT))
    checkpoint = str(Path(cfg.output_dir) / "checkpoint-1")
    assert trainer.train() == {"stopped_by": "SIGINT", "step": 1, "checkpoint": checkpoint}

    cfg = small_config(tmp_path / "twice", max_steps=3, save_steps=100)
    trainer = make_trainer(cfg, tiny_tokenizer, build_tiny_llama(tiny_tokenizer))
    interrupt_during_step(trainer, 0, lambda: [os.kill(os.getpid(), signal.SIGINT) for _ in range(2)])
    with pytest.raises(KeyboardInterrupt):
        trainer.train()


def test_resume_command_repeats_config_and_overrides():
    from leser.cli import build_parser, resume_command

    args = build_parser().parse_args(["train", "--config", "c.toml", "--set", "train.max_steps=5"])
    assert resume_command(args) == "leser train --config c.toml --set 'train.max_steps=5' --resume"


# ----------------------------------------------------------------------------- non-finite numbers


class NaNOnceReward(LetterReward):
    """The toy reward, with one NaN on the given calls of ``score``: bad data reaching one step."""

    def __init__(self, nan_calls: set[int]):
        super().__init__()
        self.calls, self.nan_calls = 0, nan_calls

    def score(self, qids, expansions):
        parts = super().score(qids, expansions)
        if self.calls in self.nan_calls:
            parts.total[1] = float("nan")
        self.calls += 1
        return parts


def test_a_nan_reward_skips_the_step_and_the_weights_stay_finite(tmp_path, tiny_tokenizer):
    cfg = small_config(tmp_path, max_steps=3, save_steps=1, scale_rewards="none", eval_queries=0)
    trainer = make_trainer(cfg, tiny_tokenizer, build_tiny_llama(tiny_tokenizer))
    trainer.reward = NaNOnceReward({1})  # step 2's rollout
    seen = []
    interrupt_during_step(trainer, 1, lambda: seen.append(weights(trainer)))
    interrupt_during_step(trainer, 2, lambda: seen.append(weights(trainer)))
    with pytest.warns(RuntimeWarning, match="step 2: non-finite rewards"):
        trainer.train()
    assert_bit_exact(seen[0], seen[1])  # step 2 made no update
    assert all(torch.isfinite(p).all() for p in trainer.model.parameters())
    assert trainer.state.skipped_steps == 1 and trainer.state.nonfinite_in_a_row == 0
    assert scalar_steps(Path(cfg.output_dir), "train/skipped_steps") == [1, 2, 3]
    assert [p.name for p in checkpoint_dirs(cfg.output_dir)] == ["checkpoint-2", "checkpoint-3"]
    resume(cfg, tiny_tokenizer)  # every checkpoint written loads


def test_a_nan_loss_skips_the_step(tmp_path, tiny_tokenizer):
    cfg = small_config(tmp_path, max_steps=2, save_steps=1, eval_queries=0)
    trainer = make_trainer(cfg, tiny_tokenizer, build_tiny_llama(tiny_tokenizer))
    real_logprobs = trainer.logprobs

    def nan_logprobs_in_step_1(model, batch, g0, g1, rows, return_entropy=False):
        out = real_logprobs(model, batch, g0, g1, rows, return_entropy)
        if return_entropy and trainer.state.step == 0:
            return out[0] * float("nan"), out[1]  # still attached to the graph: backward would spread it
        return out

    trainer.logprobs = nan_logprobs_in_step_1
    with pytest.warns(RuntimeWarning, match="step 1: non-finite loss"):
        trainer.train()
    assert trainer.state.skipped_steps == 1
    assert all(torch.isfinite(p).all() for p in trainer.model.parameters())
    assert all(torch.isfinite(v).all() for s in trainer.optimizer.state.values() for v in s.values())


def test_nan_steps_in_a_row_stop_the_run_before_any_checkpoint(tmp_path, tiny_tokenizer):
    cfg = small_config(tmp_path, max_steps=5, save_steps=1, eval_queries=0, max_nonfinite_steps=2)
    trainer = make_trainer(cfg, tiny_tokenizer, build_tiny_llama(tiny_tokenizer))
    before = weights(trainer)
    trainer.reward = NaNOnceReward(set(range(10)))
    with pytest.warns(RuntimeWarning), pytest.raises(NonFiniteStepError, match="2 steps in a row.*max_nonfinite_steps"):
        trainer.train()
    assert_bit_exact(before, weights(trainer))
    # Step 1 was skipped, so its checkpoint holds the untouched weights; step 2 stops the run before saving.
    assert [p.name for p in checkpoint_dirs(cfg.output_dir)] == ["checkpoint-1"]


def test_a_fresh_run_hides_the_events_of_an_earlier_run_that_never_checkpointed(tmp_path, tiny_tokenizer):
    from torch.utils.tensorboard import SummaryWriter

    cfg = small_config(tmp_path, max_steps=2, save_steps=100, eval_queries=0)
    with SummaryWriter(str(Path(cfg.output_dir) / "tb")) as stale:  # a run killed before its first checkpoint
        for step in range(1, 6):
            stale.add_scalar("reward/total/mean", 99.0, step)
    make_trainer(cfg, tiny_tokenizer, build_tiny_llama(tiny_tokenizer)).train()
    assert scalar_steps(Path(cfg.output_dir), "reward/total/mean") == [1, 2]


@pytest.mark.parametrize("gain", ["nan", "inf", "-inf"])
def test_a_non_finite_gain_in_the_data_is_refused_with_file_and_line(tmp_path, gain):
    import shutil

    from retrieval import load_dataset
    from retrieval.datasets import DatasetError

    folder = Path(shutil.copytree(TESTS / "fixtures" / "retrieval" / "generic", tmp_path / "generic"))
    qrels = folder / "qrels.tsv"
    lines = qrels.read_text().splitlines()
    lines[2] = "\t".join(lines[2].split("\t")[:2] + [gain])
    qrels.write_text("\n".join(lines) + "\n")
    with pytest.raises(DatasetError, match=rf"qrels\.tsv: line 3: gain '{re.escape(gain)}' is not a finite number"):
        load_dataset(str(folder))


# ----------------------------------------------------------------------------- folders and damaged checkpoints


def test_a_reused_output_folder_is_refused_unless_overwrite(tmp_path, tiny_tokenizer, capsys):
    from leser.cli import main

    cfg = small_config(tmp_path, max_steps=1, eval_queries=0)
    (Path(cfg.output_dir) / "checkpoint-7").mkdir(parents=True)  # an earlier run's
    trainer = make_trainer(cfg, tiny_tokenizer, build_tiny_llama(tiny_tokenizer))
    with pytest.raises(FileExistsError, match="checkpoint-7.*--resume.*--overwrite"):
        trainer.train()
    # The CLI refuses before loading the model or embedding the catalog (the default model is not needed).
    assert main(["train", "--set", f'train.output_dir="{cfg.output_dir}"']) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert main(["train", "--resume", "--overwrite"]) == 2

    trainer.train(overwrite=True)
    assert [p.name for p in checkpoint_dirs(cfg.output_dir)] == ["checkpoint-1"]


def test_a_damaged_newest_checkpoint_falls_back_to_the_one_before(tmp_path, tiny_tokenizer, capsys):
    cfg = small_config(tmp_path, max_steps=4, save_steps=2, eval_queries=0)
    first = make_trainer(cfg, tiny_tokenizer, build_tiny_llama(tiny_tokenizer))
    first.train()
    expected = weights(first)
    damaged = checkpoint_dirs(cfg.output_dir)[-1] / "training_state.safetensors"
    damaged.write_bytes(damaged.read_bytes()[:100])  # a write cut short

    resumed, _ = resume(cfg, tiny_tokenizer)  # from checkpoint-2, it redoes steps 3 and 4 exactly
    out = capsys.readouterr().out
    assert f"skipping checkpoint-4: {damaged}" in out and "resumed from" in out and "checkpoint-2" in out
    assert_bit_exact(expected, weights(resumed))

    for path in checkpoint_dirs(cfg.output_dir):
        (path / "training_state.json").write_text("{")
    with pytest.raises(CheckpointError, match="training_state.json"):
        resume(cfg, tiny_tokenizer)


def test_a_checkpoint_with_nan_weights_is_skipped(tmp_path, tiny_tokenizer, capsys):
    from safetensors.torch import load_file, save_file

    cfg = small_config(tmp_path, max_steps=2, save_steps=1, eval_queries=0)
    make_trainer(cfg, tiny_tokenizer, build_tiny_llama(tiny_tokenizer)).train()
    newest = checkpoint_dirs(cfg.output_dir)[-1] / "model.safetensors"
    tensors = load_file(str(newest))
    name = next(iter(tensors))
    tensors[name] = torch.full_like(tensors[name], math.nan)
    save_file(tensors, str(newest))
    resumed = make_trainer(cfg, tiny_tokenizer, build_tiny_llama(tiny_tokenizer))
    assert resumed.resume()
    assert resumed.state.step == 1
    assert f"{name} is not finite" in capsys.readouterr().out


def test_cli_exits_0_with_one_line_saying_how_to_resume(tmp_path, monkeypatch, capsys):
    """What a scheduler's log shows after a SIGTERM: exit 0 and the command that continues the run."""
    from types import SimpleNamespace

    import grpo.trainer
    import leser.queries
    import leser.runtime
    import policy
    from leser.cli import main

    class StoppedTrainer:
        def __init__(self, cfg, *args, **kwargs):
            self.output_dir = cfg.output_dir

        def train(self, resume, overwrite):
            return {"stopped_by": "SIGTERM", "step": 7, "checkpoint": f"{self.output_dir}/checkpoint-7"}

    dataset = SimpleNamespace(summary=lambda: "toy data")
    monkeypatch.setattr(policy, "load_policy", lambda *a, **k: (None, None))
    monkeypatch.setattr(leser.runtime, "build_reward", lambda cfg: SimpleNamespace(dataset=dataset, plan="toy plan"))
    monkeypatch.setattr(leser.queries, "trainable_queries", lambda *a: ["q1"])
    monkeypatch.setattr(leser.queries, "training_queries", lambda *a: ["q1"])
    monkeypatch.setattr(grpo.trainer, "GRPOTrainer", StoppedTrainer)
    out_dir = tmp_path / "run"
    assert main(["train", "--set", f'train.output_dir="{out_dir}"']) == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert last == (f"leser train: stopped by SIGTERM after step 7, checkpoint {out_dir}/checkpoint-7; continue "
                    f"with: leser train --set 'train.output_dir=\"{out_dir}\"' --resume")
