"""REINFORCE with a learned baseline against closed forms (a Gaussian policy, a two-armed bandit),
the baseline's regression, and RAM's rewards."""

import pytest
import torch

from attnlab.glimpse.reinforce import (
    baseline_loss,
    correct_reward,
    episode_reward,
    gaussian_log_prob,
    likelihood_reward,
    policy_gradient_loss,
)


@pytest.mark.parametrize("use_baseline", [False, True])
def test_reinforce_matches_the_closed_form_gradient_of_a_gaussian_policy(use_baseline):
    # Policy l ~ N(mu, std^2), reward r(l) = -(l - a)^2: E[r] = -(mu - a)^2 - std^2, so
    # dE/dmu = -2 (mu - a). The estimator's per-sample terms are (l - mu) / std^2 * (r - b).
    mu0, std, a, n = 0.3, 0.5, 0.8, 200_000
    gen = torch.Generator().manual_seed(0)
    mu = torch.tensor(mu0, dtype=torch.float64, requires_grad=True)
    action = mu.detach() + std * torch.randn(n, 1, generator=gen, dtype=torch.float64)  # (n, 1)
    log_probs = gaussian_log_prob(action[:, None, :], mu.expand(n, 1, 1), std)  # (n, 1)
    reward = -((action[:, 0] - a) ** 2)  # (n,)
    b = -((mu0 - a) ** 2) - std**2 if use_baseline else 0.0  # the exact expected reward, or none
    baselines = torch.full((n, 1), b, dtype=torch.float64)
    policy_gradient_loss(log_probs, baselines, reward).backward()
    got = -mu.grad.item()
    terms = (action[:, 0] - mu0) / std**2 * (reward - b)  # (n,)
    assert got == pytest.approx(terms.mean().item(), rel=1e-9)
    standard_error = terms.std().item() / n**0.5
    want = -2 * (mu0 - a)
    assert abs(got - want) < 5 * standard_error  # an unbiased estimator misses by > 5 SE w.p. < 1e-6
    assert 5 * standard_error < 0.1 * abs(want)  # and the test is sharp enough to catch a wrong sign or scale


def test_reinforce_matches_the_closed_form_gradient_of_a_two_armed_bandit():
    # Arm 1 with probability p = sigmoid(theta) pays 1.0, arm 0 pays 0.2: E[r] = 0.2 + 0.8 p, so
    # dE/dtheta = 0.8 p (1 - p). A baseline of 0.5 changes the variance, not the expectation.
    theta0, n = 0.4, 200_000
    gen = torch.Generator().manual_seed(1)
    theta = torch.tensor(theta0, dtype=torch.float64, requires_grad=True)
    p = torch.sigmoid(theta)
    arm = (torch.rand(n, generator=gen, dtype=torch.float64) < p.detach()).to(torch.float64)  # (n,)
    log_probs = (arm * torch.log(p) + (1 - arm) * torch.log1p(-p))[:, None]  # (n, 1)
    reward = 0.2 + 0.8 * arm  # (n,)
    policy_gradient_loss(log_probs, torch.full((n, 1), 0.5, dtype=torch.float64), reward).backward()
    got = -theta.grad.item()
    pv = p.item()
    terms = (arm - pv) * (reward - 0.5)  # d log pi / d theta = arm - p
    standard_error = terms.std().item() / n**0.5
    want = 0.8 * pv * (1 - pv)
    assert abs(got - want) < 5 * standard_error
    assert 5 * standard_error < 0.1 * want


def test_the_baseline_is_regressed_onto_the_reward():
    baselines = torch.tensor([[0.2, 0.9]], requires_grad=True)
    loss = policy_gradient_loss(torch.zeros(1, 2), baselines, torch.tensor([1.0]))
    loss.backward()
    torch.testing.assert_close(loss, torch.tensor((0.8**2 + 0.1**2) / 2))
    torch.testing.assert_close(baselines.grad, torch.tensor([[-0.8, -0.1]]))  # d/db of the mean square


def test_the_baseline_loss_takes_one_reward_per_episode_or_one_per_action():
    baselines = torch.tensor([[0.2, 0.9], [0.5, 0.0]], dtype=torch.bfloat16)  # (b, t)
    per_episode = baseline_loss(baselines, torch.tensor([1.0, 0.0]))  # every t regressed onto its R
    torch.testing.assert_close(per_episode.float(), torch.tensor((0.8**2 + 0.1**2 + 0.5**2) / 4), atol=1e-2, rtol=0)
    per_action = baseline_loss(baselines, torch.tensor([[2.0, 1.0], [1.0, 1.0]]))  # (b, t) returns
    torch.testing.assert_close(per_action.float(), torch.tensor((1.8**2 + 0.1**2 + 0.5**2 + 1.0) / 4), atol=1e-2, rtol=0)
    assert per_action.dtype == torch.bfloat16  # the reward follows the baselines' dtype


def test_the_reward_is_one_for_a_right_answer():
    logits = torch.tensor([[0.1, 2.0, 0.3], [1.0, 0.0, -1.0], [0.0, 0.0, 5.0]])
    assert correct_reward(logits, torch.tensor([1, 2, 2])).tolist() == [1.0, 0.0, 1.0]


def test_the_likelihood_reward_is_the_log_probability_of_the_label_and_a_constant():
    logits = torch.tensor([[0.1, 2.0, 0.3], [1.0, 0.0, -1.0]], requires_grad=True)
    labels = torch.tensor([1, 2])
    reward = likelihood_reward(logits, labels)
    by_hand = [2.0 - torch.tensor([0.1, 2.0, 0.3]).exp().sum().log(),
               -1.0 - torch.tensor([1.0, 0.0, -1.0]).exp().sum().log()]  # log p(label) = z_label - log sum exp z
    torch.testing.assert_close(reward, torch.stack(by_hand))
    assert not reward.requires_grad  # no gradient reaches the classifier through the reward
    assert likelihood_reward(logits.detach().bfloat16(), labels).dtype == torch.float32
    assert episode_reward("likelihood", logits, labels).tolist() == reward.tolist()
    assert episode_reward("correct", logits, labels).tolist() == [1.0, 0.0]
