"""Test error of a glimpse model three ways: at the policy's means, from one sampled path, and
averaged over several sampled paths.

A trained RAM or DRAM can be read at test time in three ways, and they answer different questions:

    means     every location is the policy's mean mu_t (eval mode): deterministic, what the
              training loop's validation reports;
    single    every location is sampled, l_t ~ N(mu_t, sigma^2 I), as while training, and the
              answer is that one path's argmax: how good the policy itself is;
    averaged  M sampled paths, their class probabilities averaged, then the argmax (Monte Carlo
              averaging, as several public reimplementations report): M times the cost, and it can
              hide a policy that often looks in the wrong place.

An answer is right when every answer position of the task is right (`sequence_accuracy`).
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor, nn


class SampledErrors(NamedTuple):
    means: float  # error looking at the policy's means
    single: float  # error of one sampled path per image
    averaged: float  # error of the probabilities averaged over `samples` sampled paths
    samples: int  # M


@torch.no_grad()
def sampled_errors(
    model: nn.Module, inputs: Tensor, targets: Tensor, samples: int = 10, seed: int = 0, chunk: int = 1000
) -> SampledErrors:
    """The three test errors of a glimpse family ("ram", "dram": forward(inputs) -> logits (b, n, o)).

    Args:
        model: the family; its training mode is restored afterwards.
        inputs: (r, c, y, x) images.
        targets: (r, n) long labels.
        samples: M paths per image for the averaged error (the single error is the first path's).
        seed: seeds torch's global generator for the draws (its state is restored afterwards).
        chunk: images per forward.
    Returns:
        SampledErrors.
    """
    if samples < 1:
        raise ValueError(f"sampled_errors: samples must be >= 1; got {samples}")
    was_training = model.training
    right = torch.zeros(3)  # means, single, averaged
    try:
        with torch.random.fork_rng(devices=[inputs.device] if inputs.is_cuda else []):
            torch.manual_seed(seed)
            for i in range(0, len(inputs), chunk):
                x, y = inputs[i : i + chunk], targets[i : i + chunk]  # (b, c, y, x), (b, n)
                model.eval()
                means = model(x)  # (b, n, o)
                model.train()
                probs = torch.stack([model(x).softmax(-1) for _ in range(samples)])  # (M, b, n, o)
                for k, scores in enumerate((means, probs[0], probs.mean(0))):
                    right[k] += int((scores.argmax(-1) == y).all(-1).sum())
    finally:
        model.train(was_training)
    errors = (1 - right / len(inputs)).tolist()
    return SampledErrors(errors[0], errors[1], errors[2], samples)
