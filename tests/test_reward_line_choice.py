"""Choosing lines from a pool by a reward (:mod:`reward.line_choice`), and sampling the pool from a policy."""
from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from reward.line_choice import greedy_lines, line_pool
from test_reward_judge import judged_env


class TableReward:
    """A reward whose total is a table's value of each line, summed, minus ``crowding`` per line past the first."""

    def __init__(self, values: dict[str, float], crowding: float = 0.0):
        self.values, self.crowding, self.calls = values, crowding, 0

    def score(self, qids, expansions):
        self.calls += 1
        totals = [sum(self.values[line] for line in lines) - self.crowding * max(len(lines) - 1, 0)
                  for lines in expansions]
        return SimpleNamespace(total=torch.tensor(totals))


def test_greedy_takes_the_best_line_first_and_stops_where_nothing_helps():
    reward = TableReward({"a": 0.1, "b": 0.5, "c": -0.2, "d": 0.3}, crowding=0.2)
    # b (+0.5) first; then d adds 0.3 - 0.2 = +0.1, a adds -0.1: d; then a would add 0.1 - 0.2 < 0: stop
    assert greedy_lines(reward, ["q"], [["a", "b", "c", "d"]], most=3) == [["b", "d"]]


def test_greedy_respects_the_budget_and_never_takes_a_line_twice():
    reward = TableReward({"a": 0.1, "b": 0.5, "c": 0.2})
    assert greedy_lines(reward, ["q"], [["a", "b", "c"]], most=2) == [["b", "c"]]
    assert greedy_lines(reward, ["q"], [["b", "b", "b"]], most=3) == [["b"]]
    assert greedy_lines(reward, ["q"], [["a", "b"]], most=0) == [[]]


def test_each_query_chooses_from_its_own_pool():
    reward = TableReward({"a": 0.4, "b": 0.5, "c": -0.1, "x": 0.2})
    chosen = greedy_lines(reward, ["q1", "q2", "q3"], [["a", "c"], ["c", "x", "b"], ["c"]], most=1)
    assert chosen == [["a"], ["b"], []]  # a line that lowers the reward is never taken


def test_greedy_refuses_pools_that_do_not_match_the_queries():
    with pytest.raises(ValueError, match="2 line pools for 1 queries"):
        greedy_lines(TableReward({}), ["q"], [[], []], most=3)


def test_line_pool_keeps_first_appearance_order_without_repeats():
    assert line_pool([["b", "a"], [], ["a", "c", "b"]]) == ["b", "a", "c"]


def test_the_judge_reward_chooses_the_line_that_brings_an_unjudged_relevant_product():
    # "impact driver" brings row 4 (relevant by the judge, judged by nobody); "hammer" brings only row 5
    reward = judged_env("judge", {0: 1.0, 1: 0.0, 2: 0.0, 4: 1.0, 5: 0.0})
    assert greedy_lines(reward, ["q"], [["hammer", "impact driver"]], most=3) == [["impact driver"]]


def test_sampled_expansions_are_seeded_per_query_and_do_not_depend_on_the_batch(tiny_llama, tiny_tokenizer):
    from policy import PromptConfig, sample_expansions

    queries, contexts = ["drill", "faucet", "sofa"], [["a cordless drill"], ["white faucet"], []]
    cfg = PromptConfig(num_expansions=3)
    kw = dict(num_samples=4, temperature=1.0, max_new_tokens=6)
    together = sample_expansions(tiny_llama, tiny_tokenizer, queries, contexts, cfg, batch_size=3, **kw)
    one_by_one = sample_expansions(tiny_llama, tiny_tokenizer, queries, contexts, cfg, batch_size=1, **kw)
    assert [len(s) for s in together] == [4, 4, 4]
    assert together == one_by_one
    assert sample_expansions(tiny_llama, tiny_tokenizer, queries, contexts, cfg, seed=1, **kw) != together
    with pytest.raises(ValueError, match="temperature > 0"):
        sample_expansions(tiny_llama, tiny_tokenizer, queries, contexts, cfg, num_samples=2, temperature=0.0)
