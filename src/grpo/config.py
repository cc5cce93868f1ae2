"""Training options. Names follow TRL's ``GRPOConfig`` where TRL has the option, so TRL users feel at home."""
from __future__ import annotations

from dataclasses import dataclass

from grpo.objective import KL_ESTIMATORS, LOSS_TYPES, SCALE_REWARDS
from grpo.schedule import OPTIMIZERS
from policy.precision import PRECISION_SETTINGS


@dataclass
class GRPOConfig:
    # --- run ---
    output_dir: str = "runs/default"
    """Checkpoints, TensorBoard events and the run's config copy go here."""
    seed: int = 0
    """Seeds data order, sampling and LoRA init: the same seed and config give the same run on one machine."""
    max_steps: int = 40
    """Training steps. One step = one batch of prompts, sampled, scored, then learned from in
    ``num_iterations`` optimiser passes: a run makes ``max_steps * num_iterations`` optimiser updates, and
    the learning-rate schedule counts steps, not updates."""
    max_time_s: float | None = None
    """Wall-clock budget: stop after the step that crosses it, save, and validate as at max_steps. For leased
    machines; the learning-rate schedule still follows max_steps, so a capped run ends before its decay."""

    # --- generation ---
    num_prompts_per_step: int = 4
    """Distinct queries per step. Each gets ``num_generations`` completions."""
    num_generations: int = 8
    """G, the group size. Advantages compare completions within a group, so G >= 2; larger G gives a
    less noisy baseline at a linear cost in sampling and learning."""
    max_completion_length: int = 32
    """Tokens per completion. Three short expansions fit in ~25 SmolLM2 tokens."""
    temperature: float = 1.0
    """Sampling temperature; log-probs in the loss use the same temperature, so the ratio is exact."""
    top_p: float = 1.0
    """Nucleus sampling. Below 1 the sampled tokens no longer follow the scored distribution exactly."""

    # --- objective ---
    beta: float = 0.04
    """Weight of the KL penalty to the frozen reference model. 0 skips the reference model entirely
    (no memory for it, no forward pass)."""
    kl_estimator: str = "k3"
    """Per-token KL estimator: k1, k2 or k3 (unbiased and non-negative; the GRPO paper's)."""
    epsilon: float = 0.2
    """Lower clip of the probability ratio (PPO's epsilon)."""
    epsilon_high: float | None = None
    """Upper clip; None means ``epsilon``. DAPO uses 0.28 to keep exploration alive."""
    loss_type: str = "grpo"
    """How per-token losses are averaged, as TRL defines them: ``grpo`` (sequence mean of token means),
    ``dapo`` (token mean over the whole batch), ``bnpo`` (token mean per micro-batch, averaged over the
    micro-batches: equal to ``dapo`` when the batch is one micro-batch) or ``dr_grpo``
    (sum / (sequences * max_completion_length), no length bias). Before ``dapo`` existed here, ``bnpo``
    meant what ``dapo`` means now."""
    scale_rewards: str = "group"
    """Divide centred rewards by the ``group`` std, the ``batch`` std, or ``none`` (Dr. GRPO)."""
    num_iterations: int = 1
    """mu: optimisation passes over each batch of rollouts. 1 is on-policy: no old-log-prob pass is needed."""
    mask_truncated_completions: bool = False
    """Exclude completions that hit max_completion_length from the loss (DAPO): a cut-off answer is not
    a fair sample of the policy's intent."""
    dynamic_sampling: bool = False
    """Drop groups whose rewards are all equal (no signal) and sample new prompts to refill the batch."""
    max_refill_rounds: int = 2
    """With dynamic_sampling: at most this many extra sampling rounds per step."""

    # --- optimisation ---
    learning_rate: float = 1e-5
    """Peak learning rate (AdamW). LoRA wants ~10x more than full fine-tuning."""
    weight_decay: float = 0.0
    adam_beta1: float = 0.9
    adam_beta2: float = 0.99
    optim: str = "adamw_torch_fused"
    """``adamw_torch_fused``: AdamW as one fused kernel over all weights; ``adamw_torch``: torch's default
    implementation (TRL's names). The same update up to rounding; on a 2-core CPU the fused step over 135M
    weights is several times faster (``experiments/probes/optimizer_step.py``). A resumed run uses this
    setting, whichever wrote the checkpoint."""
    max_grad_norm: float = 1.0
    """Clip the global gradient norm: RL gradients are spiky."""
    max_nonfinite_steps: int = 3
    """Stop the run with an error after this many steps in a row whose rewards, loss or gradients were not
    finite. Each such step is skipped (no update; counted as ``train/skipped_steps`` in TensorBoard)."""
    warmup_steps: int = 2
    """Linear warm-up, then cosine decay to ``min_lr_ratio`` of the peak."""
    min_lr_ratio: float = 0.1
    micro_batch_groups: int = 2
    """Groups per forward/backward pass. Gradients accumulate over micro-batches; the loss normalisers make
    the update identical to one big batch, so this trades memory for nothing else."""
    precision: str = "fp32"
    """``fp32``, or ``bf16``: the policy's forward and backward, the reference pass and generation run their
    matrix products in bf16 under autocast (TRL's ``bf16 = true``); weights, optimiser state, log-softmax and
    the loss stay fp32. 0.47x the fp32 step on the project's 2-core ``amx_bf16`` CPU with ``torch_compile``
    (experiments/runs/2026-11-28_bench_grpo_decode). ``auto`` (the recipe's setting): bf16 where the device runs
    it natively (a GPU with bf16, a CPU with oneDNN's bf16 kernels), else fp32, where emulated bf16 is many times
    slower; the trainer logs the choice and records it in the run's ``config.json``. The default stays fp32,
    the same computation on every machine."""
    torch_compile: bool = False
    """Compile each decoder layer of the policy and the reference (regional ``torch.compile``, dynamic shapes) for
    the scoring passes (the update's forward and backward, the reference pass), and the sampler's layers for
    each decoded token where the prompt is shared (:mod:`policy.compiled`; the prompt pass stays eager). Takes ~20%
    off a bf16 update, ~25% off the reference pass and ~10% off generation on 2 CPU cores
    (experiments/runs/2026-11-28_bench_grpo_compile, 2026-11-28_bench_grpo_decode); costs ~30 s of compiling at
    the first step and needs a C++ compiler on CPU. TRL's name; here it compiles the layers, not the whole
    model."""
    gradient_checkpointing: bool = False
    """Recompute activations in backward: less memory, ~30% more compute."""
    use_lora: bool = False
    """Train low-rank adapters instead of all weights (see [lora] in the config file)."""

    # --- logging and checkpoints ---
    logging_steps: int = 1
    log_completions_steps: int = 5
    """Every N steps, write query -> context -> expansions -> reward parts as TensorBoard text."""
    save_steps: int = 20
    """Write a checkpoint every N steps (and always at the end)."""
    save_total_limit: int = 2
    """Keep the last K checkpoints."""
    eval_queries: int = 64
    """Validation queries whose reward is measured before and after training (greedy and sampled)."""
    eval_samples_per_query: int = 2
    """Samples per validation query at the training temperature (0: greedy only). The sampled reward is what
    GRPO optimises; greedy is what serving gets, and it moves later."""

    def __post_init__(self) -> None:
        for name, allowed in (("loss_type", LOSS_TYPES), ("scale_rewards", SCALE_REWARDS),
                              ("kl_estimator", KL_ESTIMATORS), ("precision", PRECISION_SETTINGS),
                              ("optim", OPTIMIZERS)):
            if getattr(self, name) not in allowed:
                raise OptionError(name, f"must be one of {allowed}, got {getattr(self, name)!r}")
        self._require("num_generations", _integer(2), "an integer >= 2: advantages compare completions "
                                                       "within a group")
        for name in ("max_steps", "num_prompts_per_step", "max_completion_length", "num_iterations",
                     "micro_batch_groups", "save_steps", "logging_steps", "log_completions_steps",
                     "save_total_limit", "max_nonfinite_steps"):
            self._require(name, _integer(1), "an integer >= 1")
        for name in ("warmup_steps", "eval_queries", "eval_samples_per_query", "max_refill_rounds", "seed"):
            self._require(name, _integer(0), "an integer >= 0")
        for name in ("beta", "epsilon", "epsilon_high", "learning_rate", "weight_decay", "max_time_s"):
            self._require(name, lambda v: v >= 0, "a number >= 0")
        self._require("temperature", lambda v: v > 0, "> 0 (the loss divides logits by it)")
        self._require("max_grad_norm", lambda v: v > 0, "> 0 (a negative norm would reverse the update)")
        self._require("top_p", lambda v: 0 < v <= 1, "in (0, 1]")
        self._require("min_lr_ratio", lambda v: 0 <= v <= 1, "in [0, 1]")
        for name in ("adam_beta1", "adam_beta2"):
            self._require(name, lambda v: 0 <= v < 1, "in [0, 1)")

    def _require(self, name: str, ok, rule: str) -> None:
        """Raise :class:`OptionError` naming ``name`` unless its value (None: unset) passes ``ok``."""
        value = getattr(self, name)
        if value is None:
            return
        try:
            fine = not isinstance(value, (bool, str)) and bool(ok(value))
        except TypeError:  # e.g. "abc" >= 0
            fine = False
        if not fine:
            raise OptionError(name, f"must be {rule}, got {value!r}")


class OptionError(ValueError):
    """A bad option value; ``key`` names the option, so a config loader can say where it was set."""

    def __init__(self, key: str, message: str):
        super().__init__(f"{key} {message}")
        self.key = key


def _integer(minimum: int):
    return lambda v: isinstance(v, int) and v >= minimum
