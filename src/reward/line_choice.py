"""Choose a query's lines from a pool by a reward: greedy forward selection, as a served system can.

Where the policy's samples are precomputed (head queries), a judge-based reward can pick the best few of their
lines at no cost to the query's latency. The reward only picks lines; the engine still ranks the products.
"""
from __future__ import annotations

import numpy as np

__all__ = ["greedy_lines", "line_pool"]


def line_pool(completions: list[list[str]]) -> list[str]:
    """The distinct lines of several completions of one query, in the order they first appear."""
    return list(dict.fromkeys(line for lines in completions for line in lines))


def greedy_lines(reward, qids: list[str], pool: list[list[str]], most: int) -> list[list[str]]:
    """Per query ``qids[i]``, up to ``most`` lines of ``pool[i]``: each round adds the line that raises
    ``reward.score(...).total`` most, and a query stops where no line raises it. ``reward`` is a
    :class:`reward.SearchReward`; every round scores all queries' candidates together."""
    if len(pool) != len(qids):
        raise ValueError(f"{len(pool)} line pools for {len(qids)} queries")
    if most < 0:
        raise ValueError(f"most must be >= 0, got {most}")
    chosen: list[list[str]] = [[] for _ in qids]
    if not qids or most == 0:
        return chosen
    best = reward.score(qids, chosen).total.numpy()
    for _ in range(most):
        pick, gain = list(chosen), best.copy()
        for j in range(max(map(len, pool), default=0)):
            trial = [c + [p[j]] if j < len(p) and p[j] not in c else c for c, p in zip(chosen, pool)]
            total = reward.score(qids, trial).total.numpy()
            for i in np.flatnonzero(total > gain + 1e-9):
                pick[i], gain[i] = trial[i], total[i]
        if pick == chosen:
            break
        chosen, best = pick, gain
    return chosen
