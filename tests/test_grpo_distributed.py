"""Two processes (gloo on CPU, started as torchrun starts them) learn what one process learns."""
from __future__ import annotations

import itertools
import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import distributed_worker as worker
from grpo.batch import QuerySampler
from grpo.checkpoint import TrainingState
from grpo.distributed import Distributed
from grpo.objective import LOSS_TYPES, SCALE_REWARDS

WORKER = Path(worker.__file__)
TIMEOUT_S = 120
ROOT = Path(__file__).parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch(mode: str, out: Path, options: dict, world: int = 2, killed: bool = False) -> list[int]:
    """Run ``world`` worker processes with torchrun's environment; a hang fails the test instead of blocking it."""
    out.mkdir(parents=True, exist_ok=True)
    port, procs = free_port(), []
    for rank in range(world):
        env = {**os.environ, "RANK": str(rank), "LOCAL_RANK": str(rank), "WORLD_SIZE": str(world),
               "LOCAL_WORLD_SIZE": str(world), "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port),
               "OMP_NUM_THREADS": "1",
               "PYTHONWARNINGS": "ignore::UserWarning"}  # so a failure's last 3000 characters show the error
        procs.append(subprocess.Popen([sys.executable, str(WORKER), mode, str(out), json.dumps(options)], env=env,
                                      stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    try:
        outputs = [p.communicate(timeout=TIMEOUT_S)[0] for p in procs]
    except subprocess.TimeoutExpired:
        for p in procs:
            p.kill()
        pytest.fail(f"{mode}: the processes did not finish in {TIMEOUT_S} s (a collective one rank skipped hangs)")
    codes = [p.returncode for p in procs]
    if codes != [-9 if killed else 0] * world:
        pytest.fail(f"{mode}: exit codes {codes}\n" + "\n".join(o[-3000:] for o in outputs))
    return codes


def assert_close(a: torch.Tensor, b: torch.Tensor, what: str) -> None:
    torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-7, msg=lambda m: f"{what}: {m}")


def test_each_rank_gets_a_disjoint_slice_and_together_the_one_process_draw():
    state = TrainingState()
    draw = QuerySampler([f"q{i}" for i in range(10)], 0, state).take(6)
    slices = [draw[Distributed(rank, 3).shard(6)] for rank in range(3)]
    assert sum(slices, []) == draw and len(set(sum(slices, []))) == 6
    assert [Distributed(r, 3).share(7) for r in range(3)] == [slice(0, 3), slice(3, 5), slice(5, 7)]
    with pytest.raises(ValueError, match=r"num_prompts_per_step \(4\) must divide by the number of processes \(3\)"):
        Distributed(0, 3).shard(4)


UPDATE_CONFIGS = [{"loss_type": lt, "scale_rewards": sr} for lt, sr in itertools.product(LOSS_TYPES, SCALE_REWARDS)]
UPDATE_CONFIGS.append({"use_lora": True, "learning_rate": 1e-2})


def test_two_processes_take_the_one_process_update_for_every_loss(tmp_path):
    """beta > 0, num_iterations 2 and one group per micro-batch; each rank learns from its half of a fixed batch."""
    launch("grads", tmp_path, {"configs": UPDATE_CONFIGS})
    for i, config in enumerate(UPDATE_CONFIGS):
        ranks = [load_file(str(tmp_path / f"grads{i}.rank{r}.safetensors")) for r in (0, 1)]
        alone = worker.one_update(tmp_path / f"alone{i}", dict(config), Distributed())
        assert sorted(ranks[0]) == sorted(alone) and any(k.startswith("grad.1") for k in alone)
        for key, value in alone.items():
            # After DDP's all-reduce both ranks hold the same gradient: a forward that bypassed DDP would not.
            assert torch.equal(ranks[0][key], ranks[1][key]), f"{config}: {key} differs between the ranks"
            assert_close(ranks[0][key], value, f"{config} {key}")


def per_group(rewards: list[float], G: int) -> list[tuple[float, ...]]:
    return [tuple(rewards[i:i + G]) for i in range(0, len(rewards), G)]


def compare_runs(tmp_path: Path, options: dict) -> None:
    """The 2-process run against the one-process run: queries, rewards and parameters."""
    launch("train", tmp_path / "two", dict(options))
    params_alone, log_alone = worker.run_training(tmp_path / "one", dict(options), Distributed())
    logs = [json.loads((tmp_path / "two" / f"log.rank{r}.json").read_text()) for r in (0, 1)]
    params = [load_file(str(tmp_path / "two" / f"params.rank{r}.safetensors")) for r in (0, 1)]
    G = worker.small_config(tmp_path).num_generations
    assert len(logs[0]["qids"]) == len(logs[1]["qids"]) == len(log_alone["qids"]) == options["max_steps"]
    for step, (a, b, alone) in enumerate(zip(logs[0]["qids"], logs[1]["qids"], log_alone["qids"])):
        # Each group with its rewards; after refills the ranks hold them in another order than one process.
        groups = sorted(zip(a + b, per_group(logs[0]["rewards"][step], G)))
        groups_alone = sorted(zip(alone, per_group(log_alone["rewards"][step], G)))
        assert [q for q, _ in groups] == [q for q, _ in groups_alone]
        torch.testing.assert_close(torch.tensor([r for _, r in groups]), torch.tensor([r for _, r in groups_alone]))
        if not options.get("dynamic_sampling"):
            assert a + b == alone
    for name, value in params_alone.items():
        assert torch.equal(params[0][name], params[1][name]), f"{name} differs between the ranks"
        torch.testing.assert_close(params[0][name], value, rtol=1e-4, atol=1e-5)


def test_three_steps_on_two_processes_match_one_process(tmp_path):
    # One validation query: the second process has none to score and must still join the sums.
    compare_runs(tmp_path, {"max_steps": 3, "num_prompts_per_step": 2, "save_steps": 3, "valid_qids": ["q6"]})


def test_dynamic_sampling_and_uneven_lengths_do_not_hang(tmp_path):
    # Queries q0-q2 reward nothing: their groups carry no signal, so the ranks refill different numbers of groups.
    compare_runs(tmp_path, {"max_steps": 3, "num_prompts_per_step": 2, "save_steps": 3, "dynamic_sampling": True,
                            "max_refill_rounds": 2, "zero_reward_qids": ["q0", "q1", "q2"]})


def test_kill_9_on_two_processes_then_resume_on_one_is_the_uninterrupted_run(tmp_path):
    options = {"max_steps": 5, "num_prompts_per_step": 2, "save_steps": 3}
    launch("train", tmp_path / "run", {**options, "kill_after_step": 3}, killed=True)  # both died by SIGKILL
    checkpoints = tmp_path / "run" / "run"  # small_config's output_dir
    assert (checkpoints / "checkpoint-3").is_dir() and not (checkpoints / "checkpoint-5").exists()
    resumed, _ = worker.run_training(tmp_path / "run", {**options, "resume": True}, Distributed())
    uninterrupted, _ = worker.run_training(tmp_path / "alone", dict(options), Distributed())
    for name, value in uninterrupted.items():
        torch.testing.assert_close(resumed[name], value, rtol=1e-4, atol=1e-5)


@pytest.mark.slow
def test_torchrun_runs_the_cli_on_two_processes(eval_overrides, tmp_path):  # noqa: F811
    if shutil.which("torchrun") is None:
        pytest.skip("torchrun is not on PATH")
    sets = [*eval_overrides, f'train.output_dir="{tmp_path / "run"}"', "train.max_steps=2",
            "train.num_prompts_per_step=2", "train.num_generations=2", "train.max_completion_length=6",
            "train.eval_queries=2", "train.eval_samples_per_query=1", "train.save_steps=2"]
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "OMP_NUM_THREADS": "1"}
    done = subprocess.run(["torchrun", "--standalone", "--nproc_per_node=2", "-m", "leser.cli", "train",
                           *[x for s in sets for x in ("--set", s)]], env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    assert (tmp_path / "run" / "checkpoint-2" / "model.safetensors").is_file()
    assert json.loads((tmp_path / "run" / "result.json").read_text())["commit"]  # rank 0 wrote the result


from test_leser_evaluate import eval_overrides  # noqa: E402, F401  (the fixture: tiny data, encoder and policy)
