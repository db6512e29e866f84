"""attnlab.train.cost: multiply-adds against a count by hand, and the time per example."""

import pytest
import torch
from torch import nn

from attnlab.train.cost import multiply_adds, seconds_per_example


def test_multiply_adds_of_linear_and_conv_layers_by_hand():
    linear = nn.Linear(7, 5)
    assert multiply_adds(linear, torch.zeros(3, 7)) == 3 * 7 * 5  # one multiply-add per weight and row
    conv = nn.Conv2d(2, 4, kernel_size=3, padding=1)
    # each of 4 x 6 x 6 outputs sums 2 x 3 x 3 products
    assert multiply_adds(conv, torch.zeros(1, 2, 6, 6)) == 4 * 6 * 6 * 2 * 3 * 3
    # elementwise work is not counted
    assert multiply_adds(nn.Sequential(nn.ReLU(), nn.Tanh()), torch.zeros(4, 9)) == 0


def test_cost_runs_in_eval_mode_and_restores_the_mode():
    seen = []

    class Probe(nn.Module):
        def forward(self, x):
            seen.append(self.training)
            return x @ torch.ones(x.shape[-1], 2)

    probe = Probe().train()
    assert multiply_adds(probe, torch.zeros(1, 3)) == 6
    assert seconds_per_example(probe, torch.zeros(8, 3), repeats=2) > 0
    assert seen == [False] * 4 and probe.training  # 1 counted call, 1 warm-up and 2 timed; mode restored
    with pytest.raises(ValueError, match="repeats must be >= 1"):
        seconds_per_example(probe, torch.zeros(8, 3), repeats=0)
