"""REINFORCE for the glimpse models' location policies (Williams 1992), with a learned baseline.

    grad J = E[ sum_t grad log pi(l_t) (R_t - b_t) ],   b_t regressed onto R_t

RAM (Mnih et al. 2014) pays one reward per image, R = 1 where the label is right (`correct_reward`),
or, as Xu et al. 2015's hard attention (eq. 12), R = log p(label) (`likelihood_reward`), which tells a
more confident right answer from a less confident one (`episode_reward` picks by name);
DRAM (Ba et al. 2015) pays a return per location (attnlab.glimpse.dram.rewards_to_go). Both policies
are Gaussian around the location network's mean with a fixed std (`gaussian_log_prob`).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor


def gaussian_log_prob(action: Tensor, mean: Tensor, std: float) -> Tensor:
    """log N(action; mean, std^2 I), summed over the last dim: (..., 2), (..., 2) -> (...)."""
    z = (action - mean) / std  # (..., 2)
    return (-0.5 * z**2 - math.log(std) - 0.5 * math.log(2 * math.pi)).sum(-1)  # (...)


def policy_gradient_loss(log_probs: Tensor, baselines: Tensor, reward: Tensor) -> Tensor:
    """REINFORCE with a learned baseline, as one loss to minimise.

    -mean_b sum_t log pi_t (R_t - b_t), the advantage detached so that it only weighs the score
    function, plus the baseline's mean squared error to R_t (its own regression target). R_t is
    the reward that follows action t: one episode's reward R for every t (RAM), or a return per
    action (DRAM's sequential rewards, attnlab.glimpse.dram.rewards_to_go).

    Args:
        log_probs: (b, t) log-probabilities of the actions taken.
        baselines: (b, t) predicted rewards b_t.
        reward: (b,) the episode's reward R, or (b, t) the return R_t of each action.
    Returns:
        () the loss.
    """
    reward = per_action(reward, log_probs.dtype)  # (b, 1) or (b, t)
    advantage = (reward - baselines).detach()  # (b, t)
    policy = -(log_probs * advantage).sum(1).mean()
    return policy + baseline_loss(baselines, reward)


def baseline_loss(baselines: Tensor, reward: Tensor) -> Tensor:
    """The baseline's own loss: b_t regressed onto R_t, the reward that follows action t.

    baselines (b, t); reward (b,) one per episode (the same R_t at every t) or (b, t) -> () the mean
    squared error.
    """
    return F.mse_loss(baselines, per_action(reward, baselines.dtype).expand_as(baselines))


def per_action(reward: Tensor, dtype: torch.dtype) -> Tensor:
    """A reward as one per action: (b,) one per episode -> (b, 1), broadcast over the actions; (b, t) as is."""
    reward = reward.to(dtype)  # (b,) or (b, t)
    return reward[:, None] if reward.dim() == 1 else reward


def correct_reward(logits: Tensor, labels: Tensor) -> Tensor:
    """RAM's reward: logits (b, classes), labels (b,) -> (b,) 1.0 where argmax is right, else 0
    (any leading shape: (b, K, classes), (b, K) -> (b, K))."""
    return (logits.argmax(-1) == labels).to(logits.dtype)  # (b,)


def likelihood_reward(logits: Tensor, labels: Tensor) -> Tensor:
    """The hard-attention reward of Xu et al. 2015: logits (b, classes), labels (b,) -> (b,) log p(label),
    computed in float32 from the logits detached (a reward is a constant to the policy's gradient)."""
    return -F.cross_entropy(logits.detach().float(), labels, reduction="none")  # (b,)


REWARDS = {"correct": correct_reward, "likelihood": likelihood_reward}  # an episode's reward, by name


def episode_reward(kind: str, logits: Tensor, labels: Tensor) -> Tensor:
    """One reward per image by name (`REWARDS`): logits (b, classes), labels (b,) -> (b,)."""
    return REWARDS[kind](logits, labels)
