"""The GRPO math, checked against numbers worked out by hand."""
import math

import pytest
import torch

from grpo.objective import (
    LossNormalizer,
    aggregate_loss,
    clipped_surrogate,
    group_advantages,
    grpo_loss,
    kl_penalty,
    zero_std_groups,
)


def test_group_of_four_by_hand():
    # rewards 1, 2, 3, 6: mean 3, centred -2, -1, 0, 3;
    # unbiased variance (4 + 1 + 0 + 9) / 3 = 14/3, std = 2.16025.
    adv = group_advantages(torch.tensor([1.0, 2.0, 3.0, 6.0]), group_size=4, eps=0.0)
    std = math.sqrt(14 / 3)
    assert torch.allclose(adv, torch.tensor([-2 / std, -1 / std, 0.0, 3 / std]), atol=1e-6)
    assert adv.tolist()[0] == pytest.approx(-0.92582, abs=1e-5)


def test_eps_is_added_to_std():
    adv = group_advantages(torch.tensor([0.0, 0.0, 1.0, 1.0]), group_size=4, eps=0.1)
    # centred +-0.5, std sqrt(1/3) = 0.57735, divided by 0.67735
    assert adv[3].item() == pytest.approx(0.5 / (math.sqrt(1 / 3) + 0.1), abs=1e-6)


@pytest.mark.parametrize("scale", ["group", "batch", "none"])
def test_all_equal_group_gives_zeros(scale):
    rewards = torch.tensor([0.7, 0.7, 0.7, 0.7, 0.0, 1.0, 0.0, 1.0])
    adv = group_advantages(rewards, group_size=4, scale_rewards=scale)
    assert torch.equal(adv[:4], torch.zeros(4))
    assert adv[4:].abs().min() > 0


def test_scale_rewards_variants_by_hand():
    rewards = torch.tensor([0.0, 0.0, 1.0, 1.0, 2.0, 2.0, 2.0, 2.0])
    centred = torch.tensor([-0.5, -0.5, 0.5, 0.5, 0.0, 0.0, 0.0, 0.0])
    none = group_advantages(rewards, 4, "none")
    assert torch.allclose(none, centred)
    # group: first group's std is sqrt(1/3); the second group is constant, centred 0 stays 0.
    group = group_advantages(rewards, 4, "group", eps=0.0)
    assert torch.allclose(group[:4], centred[:4] / math.sqrt(1 / 3), atol=1e-6)
    assert torch.equal(group[4:], torch.zeros(4))
    # batch: batch mean 10/8 = 1.25, squared deviations 2 * 1.5625 + 2 * 0.0625 + 4 * 0.5625 = 5.5,
    # unbiased std sqrt(5.5 / 7) = 0.88641.
    batch = group_advantages(rewards, 4, "batch", eps=0.0)
    assert torch.allclose(batch, centred / math.sqrt(5.5 / 7), atol=1e-6)


def test_group_vs_batch_differ_when_groups_have_different_spread():
    rewards = torch.tensor([0.0, 1.0, 0.0, 10.0])
    assert not torch.allclose(group_advantages(rewards, 2, "group"), group_advantages(rewards, 2, "batch"))


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="scale_rewards"):
        group_advantages(torch.zeros(4), 4, "per-token")
    with pytest.raises(ValueError, match="n_groups"):
        group_advantages(torch.zeros(5), 4)


def test_zero_std_groups():
    rewards = torch.tensor([1.0, 1.0, 0.0, 2.0, 3.0, 3.0])
    assert zero_std_groups(rewards, 2).tolist() == [True, False, True]


# per-token losses of two completions, lengths 3 and 1; 99 marks padding.
LOSS = torch.tensor([[1.0, 2.0, 3.0, 99.0], [4.0, 99.0, 99.0, 99.0]])
MASK = torch.tensor([[1, 1, 1, 0], [1, 0, 0, 0]])
NORM = LossNormalizer(num_sequences=2, num_tokens=4, max_completion_length=4)


@pytest.mark.parametrize(
    "loss_type, expected",
    [
        ("grpo", 3.0),  # sequence means 2 and 4, mean over sequences 3
        ("bnpo", 2.5),  # one micro-batch: (1 + 2 + 3 + 4) / 4 tokens
        ("dapo", 2.5),  # (1 + 2 + 3 + 4) / 4 tokens
        ("dr_grpo", 1.25),  # 10 / (2 sequences * 4 max tokens)
    ],
)
def test_loss_normalisers_by_hand(loss_type, expected):
    assert aggregate_loss(LOSS, MASK, loss_type, NORM).item() == pytest.approx(expected)


@pytest.mark.parametrize("loss_type", ["grpo", "dapo", "dr_grpo"])
def test_gradient_accumulation_gives_the_same_loss_and_gradient(loss_type):
    values = LOSS.clone().requires_grad_(True)
    full = aggregate_loss(values, MASK, loss_type, NORM)
    (full_grad,) = torch.autograd.grad(full, values)

    values2 = LOSS.clone().requires_grad_(True)
    parts = [aggregate_loss(values2[i : i + 1], MASK[i : i + 1], loss_type, NORM) for i in range(2)]
    accumulated = parts[0] + parts[1]
    (acc_grad,) = torch.autograd.grad(accumulated, values2)
    assert accumulated.item() == pytest.approx(full.item())
    assert torch.allclose(full_grad, acc_grad)


def test_bnpo_normalises_each_micro_batch_as_trl_does():
    # Two micro-batches of one row each: token means 2 (of 3 tokens) and 4 (of 1), divided by 2 micro-batches.
    norm = LossNormalizer(num_sequences=2, num_tokens=4, max_completion_length=4, num_micro_batches=2)
    parts = [aggregate_loss(LOSS[i : i + 1], MASK[i : i + 1], "bnpo", norm).item() for i in range(2)]
    assert parts == pytest.approx([1.0, 2.0])
    assert sum(parts) == pytest.approx(3.0)  # dapo gives 2.5: the split changes bnpo, not dapo


def test_dr_grpo_divides_by_max_completion_length_not_the_padded_width():
    # Padded width 4, generation cap 8: 10 / (2 sequences * 8).
    norm = LossNormalizer(num_sequences=2, num_tokens=4, max_completion_length=8)
    assert aggregate_loss(LOSS, MASK, "dr_grpo", norm).item() == pytest.approx(0.625)


def test_garbage_at_padding_changes_nothing():
    garbage = LOSS.clone()
    garbage[MASK == 0] = float("inf")
    for loss_type in ("grpo", "bnpo", "dapo", "dr_grpo"):
        assert aggregate_loss(garbage, MASK, loss_type, NORM) == aggregate_loss(LOSS, MASK, loss_type, NORM)

    logprobs = torch.tensor([[-1.0, -2.0, 7.0], [-0.5, 3.0, -9.0]])
    other = logprobs.clone()
    other[:, 2] = torch.tensor([-40.0, 12.0])
    mask = torch.tensor([[1, 1, 0], [1, 1, 0]])
    norm = LossNormalizer(2, 4, 3)
    old = torch.full_like(logprobs, -1.0)
    adv = torch.tensor([1.0, -1.0])
    a, _ = grpo_loss(logprobs, old, old, adv, mask, norm, beta=0.1)
    b, _ = grpo_loss(other, old, old, adv, mask, norm, beta=0.1)
    assert a.item() == pytest.approx(b.item())


def _surrogate_grad(logprob: float, old: float, advantage: float) -> float:
    lp = torch.tensor([[logprob]], requires_grad=True)
    out = clipped_surrogate(lp, torch.tensor([[old]]), torch.tensor([advantage]), epsilon=0.2)
    out.per_token_loss.sum().backward()
    return lp.grad.item()


def test_clipped_surrogate_has_zero_gradient_where_clipped():
    # positive advantage, ratio e^0.5 = 1.65 > 1.2: clipped
    assert _surrogate_grad(0.5, 0.0, 1.0) == 0.0
    # negative advantage, ratio e^-0.5 = 0.61 < 0.8: clipped
    assert _surrogate_grad(-0.5, 0.0, -1.0) == 0.0
    # inside the trust region: d(-ratio * A)/d logprob = -ratio * A = -1 * 2 at ratio 1
    assert _surrogate_grad(0.0, 0.0, 2.0) == pytest.approx(-2.0)
    # outside but on the side that the min keeps unclipped: gradient flows
    assert _surrogate_grad(0.5, 0.0, -1.0) == pytest.approx(math.exp(0.5))
    assert _surrogate_grad(-0.5, 0.0, 1.0) == pytest.approx(-math.exp(-0.5))


def test_clip_statistics_and_epsilon_high():
    lp = torch.log(torch.tensor([[0.5, 1.25, 1.25]]))
    old = torch.zeros(1, 3)
    out = clipped_surrogate(lp, old, torch.tensor([-1.0]), epsilon=0.2)
    assert out.is_low_clipped.tolist() == [[True, False, False]]
    up = clipped_surrogate(lp, old, torch.tensor([1.0]), epsilon=0.2)
    assert up.is_high_clipped.tolist() == [[False, True, True]]
    # a wider upper clip lets ratio 1.25 through
    wide = clipped_surrogate(lp, old, torch.tensor([1.0]), epsilon=0.2, epsilon_high=0.28)
    assert not wide.is_high_clipped.any()


def test_kl_k3_is_zero_for_equal_policies_and_positive_otherwise():
    lp = torch.tensor([[-1.0, -2.0, -0.1]])
    assert torch.equal(kl_penalty(lp, lp, "k3"), torch.zeros_like(lp))
    other = lp + torch.tensor([[0.3, -0.4, 1.0]])
    assert (kl_penalty(lp, other, "k3") > 0).all()
    # k3 at log r = logp - ref = -0.3: e^{0.3} - 0.3 - 1
    assert kl_penalty(lp, other, "k3")[0, 0].item() == pytest.approx(math.exp(0.3) - 0.3 - 1, abs=1e-6)
    assert kl_penalty(lp, other, "k1")[0, 0].item() == pytest.approx(-0.3, abs=1e-6)
    assert kl_penalty(lp, other, "k2")[0, 0].item() == pytest.approx(0.045, abs=1e-6)
    with pytest.raises(ValueError):
        kl_penalty(lp, other, "k4")


def test_grpo_loss_on_policy_value_and_kl_term():
    # on-policy (old == current): ratio 1, so the surrogate is -A per token.
    lp = torch.tensor([[-1.0, -1.0], [-2.0, -2.0]])
    mask = torch.tensor([[1, 1], [1, 0]])
    adv = torch.tensor([1.0, -1.0])
    norm = LossNormalizer(2, 3, 2)
    loss, stats = grpo_loss(lp, lp, None, adv, mask, norm, loss_type="grpo")
    assert loss.item() == pytest.approx((-1.0 + 1.0) / 2)
    assert "kl" not in stats
    ref = lp - 0.5
    loss_kl, stats = grpo_loss(lp, lp, ref, adv, mask, norm, loss_type="grpo", beta=0.1)
    k3 = math.exp(-0.5) + 0.5 - 1
    assert loss_kl.item() == pytest.approx(0.1 * k3, abs=1e-6)
    assert stats["kl"].item() == pytest.approx(k3, abs=1e-6)
    with pytest.raises(ValueError, match="reference"):
        grpo_loss(lp, lp, None, adv, mask, norm, beta=0.1)


ONE_TOKEN = LossNormalizer(num_sequences=1, num_tokens=1, max_completion_length=1)


@pytest.mark.parametrize(
    "advantage, ratio, loss, grad",
    [
        (1.0, 1.25, -1.25, -1.25),  # inside the upper clip (1.28): the plain policy gradient
        (1.0, 1.35, -1.28, 0.0),  # above 1 + epsilon_high: clipped, no gradient
        (-1.0, 0.75, 0.80, 0.0),  # below 1 - epsilon: clipped, no gradient
        (-1.0, 1.35, 1.35, 1.35),  # negative advantage is never clipped from above
    ],
)
def test_clipped_loss_and_gradient_by_hand(advantage, ratio, loss, grad):
    """epsilon 0.2, epsilon_high 0.28 (DAPO's): catches swapped or ignored clip bounds in the loss itself."""
    logprobs = torch.tensor([[math.log(ratio)]], requires_grad=True)
    old = torch.zeros(1, 1)
    value, _ = grpo_loss(logprobs, old, None, torch.tensor([advantage]), torch.ones(1, 1), ONE_TOKEN,
                         epsilon=0.2, epsilon_high=0.28, beta=0.0)
    value.backward()
    assert value.item() == pytest.approx(loss, abs=1e-6)
    assert logprobs.grad.item() == pytest.approx(grad, abs=1e-6)


@pytest.mark.parametrize("logp, ref", [(-1.0, -1.5), (-2.0, -1.0), (-0.3, -0.3)])
def test_k3_kl_carries_its_gradient_by_hand(logp, ref):
    """d/dlogp of beta * k3 = beta * (1 - exp(ref - logp)); zero advantage leaves only the KL term."""
    beta = 0.1
    logprobs = torch.tensor([[logp]], requires_grad=True)
    value, stats = grpo_loss(logprobs, logprobs.detach(), torch.tensor([[ref]]), torch.zeros(1), torch.ones(1, 1),
                             ONE_TOKEN, beta=beta, kl_estimator="k3")
    value.backward()
    expected_kl = math.exp(ref - logp) - (ref - logp) - 1
    assert value.item() == pytest.approx(beta * expected_kl, abs=1e-6)
    assert logprobs.grad.item() == pytest.approx(beta * (1 - math.exp(ref - logp)), abs=1e-6)


def test_k3_kl_is_clamped_far_from_the_reference():
    kl = kl_penalty(torch.tensor([[-31.0, 0.0]]), torch.tensor([[-1.0, 0.0]]), "k3")
    assert kl[0, 0].item() == pytest.approx(10.0)  # unclamped: exp(30) - 31 = 1e13
    assert kl[0, 1].item() == 0.0


def test_a_nan_reward_makes_its_group_nan_not_zero():
    """A NaN reward must reach the trainer's non-finite guard, not pass as a constant group (advantage 0)."""
    rewards = torch.tensor([0.0, float("nan"), 1.0, 0.0, 1.0, 0.5])
    for scale in ("group", "none"):
        adv = group_advantages(rewards, 3, scale)
        assert torch.isnan(adv[:3]).all(), scale
        assert torch.isfinite(adv[3:]).all(), scale


# ----------------------------------------------------------------------------- pins found by mutation testing


def test_default_eps_and_clip_range():
    """The defaults are part of the objective: eps 1e-4 in the std, epsilon 0.2 in the clip."""
    adv = group_advantages(torch.tensor([0.0, 1.0]), 2)
    assert adv[1].item() == pytest.approx(0.5 / (math.sqrt(0.5) + 1e-4), rel=1e-6)
    logprobs = torch.tensor([[math.log(1.25)]])
    surrogate = clipped_surrogate(logprobs, torch.zeros(1, 1), torch.tensor([1.0]))
    assert surrogate.per_token_loss.item() == pytest.approx(-1.2)
    loss, _ = grpo_loss(logprobs, torch.zeros(1, 1), None, torch.tensor([1.0]), torch.ones(1, 1), ONE_TOKEN)
    assert loss.item() == pytest.approx(-1.2)


def test_small_reward_differences_are_signal():
    assert zero_std_groups(torch.tensor([0.0, 0.5, 0.3, 0.3]), 2).tolist() == [False, True]


@pytest.mark.parametrize("loss_type", ["grpo", "bnpo", "dapo", "dr_grpo"])
def test_one_token_batch_is_its_own_loss(loss_type):
    value = aggregate_loss(torch.tensor([[-1.25]]), torch.ones(1, 1), loss_type, ONE_TOKEN)
    assert value.item() == pytest.approx(-1.25)


def test_clip_statistics_and_their_names():
    # ratio 0.5 with advantage -1 is low-clipped; 0.9 with -1 and 0.5 with +0.5 are not; 1.5 with +1 is high-clipped.
    logprobs = torch.log(torch.tensor([[0.5], [0.9], [0.5], [1.5]]))
    old = torch.zeros(4, 1)
    adv = torch.tensor([-1.0, -1.0, 0.5, 1.0])
    out = clipped_surrogate(logprobs, old, adv, 0.2, 0.28)
    assert out.is_low_clipped.flatten().tolist() == [True, False, False, False]
    assert out.is_high_clipped.flatten().tolist() == [False, False, False, True]
    # A zero advantage (a constant group) is never clipped ...
    out = clipped_surrogate(torch.log(torch.tensor([[0.5], [1.5]])), old[:2], torch.zeros(2), 0.2, 0.28)
    assert not out.is_low_clipped.any() and not out.is_high_clipped.any()
    # ... and neither is a ratio exactly on the bound (0.5 and 2.0 are exact in float32).
    out = clipped_surrogate(torch.log(torch.tensor([[0.5], [2.0]])), old[:2], torch.tensor([-1.0, 1.0]), 0.5, 1.0)
    assert not out.is_low_clipped.any() and not out.is_high_clipped.any()
    low = torch.log(torch.tensor([[0.5]]))
    _, stats = grpo_loss(low, old[:1], None, torch.tensor([-1.0]), torch.ones(1, 1), ONE_TOKEN)
    assert stats["clip_ratio/low"].item() == 1.0 and stats["clip_ratio/high"].item() == 0.0


def test_kl_estimator_reaches_the_loss_and_k3_is_the_default():
    logprobs, ref = torch.tensor([[-1.0]]), torch.tensor([[-1.5]])
    loss, stats = grpo_loss(logprobs, logprobs, ref, torch.zeros(1), torch.ones(1, 1), ONE_TOKEN, beta=1.0,
                            kl_estimator="k1")
    assert loss.item() == pytest.approx(0.5) and stats["kl"].item() == pytest.approx(0.5)
    assert kl_penalty(logprobs, ref).item() == pytest.approx(math.exp(-0.5) + 0.5 - 1)


def test_k3_far_below_the_reference_has_a_zero_not_a_nan_gradient():
    logprobs = torch.tensor([[-200.0]], requires_grad=True)  # exp(199) overflows float32 without the inner clamp
    kl_penalty(logprobs, torch.tensor([[-1.0]]), "k3").sum().backward()
    assert logprobs.grad.item() == 0.0


def test_bad_names_are_refused_with_the_option_named():
    with pytest.raises(ValueError, match="kl estimator must be one of"):
        kl_penalty(torch.zeros(1, 1), torch.zeros(1, 1), "k4")
    with pytest.raises(ValueError, match="loss_type must be one of"):
        aggregate_loss(torch.zeros(1, 1), torch.ones(1, 1), "ppo", ONE_TOKEN)
    with pytest.raises(ValueError, match="^beta != 0 needs reference log-probs$"):
        grpo_loss(torch.zeros(1, 1), torch.zeros(1, 1), None, torch.zeros(1), torch.ones(1, 1), ONE_TOKEN, beta=0.1)
