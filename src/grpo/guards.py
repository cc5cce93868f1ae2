"""What keeps a long run's work safe: a graceful stop on SIGTERM/SIGINT, and the non-finite step guard."""
from __future__ import annotations

import signal
import threading
import warnings

import torch


class GracefulStop:
    """While active, SIGTERM and SIGINT ask the loop to stop after the current step instead of killing it.

    A scheduler's SIGTERM (preemption) or a Ctrl-C then costs nothing: the loop finishes the step it is in,
    writes a checkpoint and returns. A second signal of the same kind is not caught again: Ctrl-C twice
    abandons the step at once (KeyboardInterrupt), as a user who insists expects. Handlers can only be set
    from the main thread; elsewhere this does nothing and signals keep their usual effect.
    """

    SIGNALS = (signal.SIGTERM, signal.SIGINT)

    def __init__(self):
        self.received: str | None = None
        self._previous: dict[int, object] = {}

    def _handle(self, signum, frame) -> None:
        self.received = signal.Signals(signum).name
        signal.signal(signum, self._previous.get(signum, signal.SIG_DFL))  # the second one is not caught
        print(f"\n{self.received} received: stopping after this step and writing a checkpoint", flush=True)

    def __enter__(self) -> GracefulStop:
        if threading.current_thread() is threading.main_thread():
            for sig in self.SIGNALS:
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()


class NonFiniteStepError(RuntimeError):
    """Too many steps in a row had non-finite rewards, loss or gradients."""


def first_nonfinite(**values: torch.Tensor) -> str | None:
    """The name of the first tensor that holds a NaN or an infinity (None when all are finite)."""
    return next((name for name, value in values.items() if not torch.isfinite(value).all()), None)


def check_skipped_step(reason: str | None, state, limit: int, step: int) -> None:
    """Count a step skipped for ``reason`` (None: it was applied) in ``state``; raise after ``limit`` in a row.

    A skipped step makes no optimiser update, so the weights and the next checkpoint stay finite; the
    counters live in the TrainingState, so a resumed run keeps counting where it stopped."""
    if reason is None:
        state.nonfinite_in_a_row = 0
        return
    state.skipped_steps += 1
    state.nonfinite_in_a_row += 1
    warnings.warn(f"step {step}: non-finite {reason}; the step is skipped (no update), "
                  f"{state.nonfinite_in_a_row} in a row", RuntimeWarning, stacklevel=2)
    if state.nonfinite_in_a_row >= limit:
        raise NonFiniteStepError(
            f"{state.nonfinite_in_a_row} steps in a row had non-finite {reason} (train.max_nonfinite_steps = "
            f"{limit}); the last checkpoint holds finite weights. Check the reward data (nan/inf gains), "
            f"lower the learning rate, or raise max_nonfinite_steps")
