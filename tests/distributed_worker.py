"""One process of a 2-process gloo run, started by tests/test_grpo_distributed.py the way torchrun starts one.

    python tests/distributed_worker.py MODE OUT_DIR [JSON_OPTIONS]

MODE ``grads``: for each config in the options, one update of a fixed batch (this rank's half of it); writes the
gradient of every pass and the parameters after. MODE ``train``: a tiny training run; writes the queries and
rewards of each step and the final parameters. With ``kill_after_step``, the process kills itself with SIGKILL
right after that step's checkpoint, as ``kill -9`` would.
"""
from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path

import torch
from safetensors.torch import save_file

sys.path[:0] = [str(Path(__file__).parent), str(Path(__file__).parents[1] / "src")]

from conftest import build_tiny_llama, build_tiny_tokenizer  # noqa: E402
from test_grpo_trainer import make_trainer, small_config  # noqa: E402

from grpo.batch import select_groups  # noqa: E402
from grpo.distributed import Distributed, from_environment, shutdown  # noqa: E402
from grpo.logs import PhaseTimer  # noqa: E402
from grpo.objective import group_advantages  # noqa: E402


def use_sgd(trainer) -> None:
    """Plain SGD: a gradient difference stays a parameter difference of the same size (Adam would rescale it)."""
    params = [p for p in trainer.model.parameters() if p.requires_grad]
    trainer.optimizer = torch.optim.SGD(params, lr=0.1)
    trainer.scheduler = torch.optim.lr_scheduler.LambdaLR(trainer.optimizer, lambda s: 1.0)


def record_gradients(trainer) -> list[torch.Tensor]:
    """The flat gradient each optimiser step sees, in order."""
    seen: list[torch.Tensor] = []
    step = trainer.optimizer.step

    def recording_step(*args, **kwargs):
        seen.append(torch.cat([p.grad.flatten() for p in trainer.model.parameters() if p.grad is not None]).clone())
        return step(*args, **kwargs)

    trainer.optimizer.step = recording_step
    return seen


def one_update(tmp: Path, options: dict, dist: Distributed) -> dict[str, torch.Tensor]:
    """The gradients and parameters after one update of the fixed 4-group batch; this rank learns from its half."""
    tokenizer = build_tiny_tokenizer()
    cfg = small_config(tmp, num_prompts_per_step=4, num_iterations=2, micro_batch_groups=1, **options)
    trainer = make_trainer(cfg, tokenizer, build_tiny_llama(tokenizer), dist=dist)
    use_sgd(trainer)
    seen = record_gradients(trainer)
    G = cfg.num_generations
    full = trainer.rollout(["q0", "q1", "q2", "q3"], PhaseTimer())  # the same on every rank: same seeds
    advantages = group_advantages(full.parts.total, G, cfg.scale_rewards)
    mine = dist.shard(4)
    batch = select_groups(full, list(range(4))[mine], G)
    batch.advantages = advantages[mine.start * G:mine.stop * G]
    trainer.update(batch, PhaseTimer())
    out = {f"grad.{i}": g for i, g in enumerate(seen)}
    out.update({f"param.{n}": p.detach().clone() for n, p in trainer.model.named_parameters()})
    return out


def run_training(tmp: Path, options: dict, dist: Distributed) -> tuple[dict[str, torch.Tensor], dict]:
    """A short training run; returns the final parameters and, per step, its queries and rewards."""
    kill_after, resume = options.pop("kill_after_step", None), options.pop("resume", False)
    zero_reward = set(options.pop("zero_reward_qids", []))
    valid_qids = options.pop("valid_qids", None)
    tokenizer = build_tiny_tokenizer()
    trainer = make_trainer(small_config(tmp, **options), tokenizer, build_tiny_llama(tokenizer), dist=dist)
    trainer.valid_qids = valid_qids if valid_qids is not None else trainer.valid_qids
    score = trainer.reward.score

    def score_with_dead_queries(qids, expansions):
        parts = score(qids, expansions)
        dead = torch.tensor([q in zero_reward for q in qids])
        for name in ("relevance", "total"):
            setattr(parts, name, torch.where(dead, 0.0, getattr(parts, name)))
        return parts

    trainer.reward.score = score_with_dead_queries
    log: dict = {"qids": [], "rewards": []}
    rollout, save = trainer.rollout_with_dynamic_sampling, trainer.save

    def recording_rollout(timer):
        batch = rollout(timer)
        log["qids"].append(batch.qids)
        log["rewards"].append(dist.gather(batch.parts.total).tolist())
        return batch

    def saving_then_dying():
        path = save()
        if trainer.state.step == kill_after:
            os.kill(os.getpid(), signal.SIGKILL)
        return path

    trainer.rollout_with_dynamic_sampling, trainer.save = recording_rollout, saving_then_dying
    trainer.train(resume=resume)
    return {n: p.detach().clone() for n, p in trainer.model.named_parameters()}, log


def main() -> None:
    mode, out = sys.argv[1], Path(sys.argv[2])
    options = json.loads(sys.argv[3]) if len(sys.argv) > 3 else {}
    torch.set_num_threads(1)
    dist = from_environment("cpu")
    rank = dist.rank
    try:
        if mode == "grads":
            for i, config in enumerate(options["configs"]):
                save_file(one_update(out / f"grads{i}", config, dist), str(out / f"grads{i}.rank{rank}.safetensors"))
        else:
            params, log = run_training(out, options, dist)
            save_file(params, str(out / f"params.rank{rank}.safetensors"))
            (out / f"log.rank{rank}.json").write_text(json.dumps(log))
        # Both ranks done before either tears gloo down: a rank that closed its connections first could make the
        # other's gloo thread abort at exit ("terminate called without an active exception", exit -6).
        torch.distributed.barrier()
    finally:
        shutdown()


if __name__ == "__main__":
    main()
