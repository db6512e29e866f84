"""The three test errors of a glimpse model: at the means, one sampled path, several averaged."""

import pytest
import torch
from torch import nn

from attnlab.glimpse.scoring import sampled_errors
from attnlab.models import build_model
from attnlab.spec import TaskSpec


class Coin(nn.Module):
    """Right in eval mode; while training, right with probability p per image and call, else one class off.

    inputs (b, 1, 1, 1) hold the labels; logits (b, 1, o), a large margin so a probability is one-hot."""

    def __init__(self, p: float, classes: int = 5):
        super().__init__()
        self.p, self.classes = p, classes

    def forward(self, inputs):
        labels = inputs.flatten().long()  # (b,)
        if self.training:
            wrong = torch.rand(len(labels)) >= self.p  # (b,)
            labels = torch.where(wrong, (labels + 1) % self.classes, labels)
        return 20.0 * nn.functional.one_hot(labels, self.classes).float()[:, None]  # (b, 1, o)


def coin_data(r=4000, classes=5):
    labels = torch.arange(r) % classes  # (r,)
    return labels.float().view(r, 1, 1, 1), labels[:, None]


def test_each_error_against_its_probability():
    inputs, targets = coin_data()
    scored = sampled_errors(Coin(0.6), inputs, targets, samples=31, chunk=700)
    assert scored.means == 0.0  # eval mode looks at the means: always right here
    assert scored.single == pytest.approx(0.4, abs=0.03)  # one path: wrong with probability 0.4
    # 31 paths averaged: wrong when at most 15 of 31 are right, P(Binomial(31, 0.6) <= 15) = 0.1284
    assert scored.averaged == pytest.approx(0.1284, abs=0.02)
    assert scored.samples == 31


def test_one_sample_averages_to_itself_and_a_seed_repeats():
    inputs, targets = coin_data(r=500)
    first = sampled_errors(Coin(0.5), inputs, targets, samples=1, seed=3)
    assert first.single == first.averaged
    assert sampled_errors(Coin(0.5), inputs, targets, samples=1, seed=3) == first
    assert sampled_errors(Coin(0.5), inputs, targets, samples=1, seed=4) != first


def test_mode_and_global_generator_are_restored():
    inputs, targets = coin_data(r=100)
    model = Coin(0.5).eval()
    torch.manual_seed(11)
    expected = torch.rand(3)
    torch.manual_seed(11)
    sampled_errors(model, inputs, targets, samples=2)
    assert not model.training
    assert torch.equal(torch.rand(3), expected)
    with pytest.raises(ValueError, match="samples must be >= 1"):
        sampled_errors(model, inputs, targets, samples=0)


def test_ram_means_error_is_the_eval_forward_and_sampling_moves_the_glimpses():
    torch.manual_seed(0)
    spec = TaskSpec(seq_len=1, answer_len=1, num_outputs=10, image=(1, 16, 16))
    model = build_model("ram", {"glimpse_size": 4, "num_glimpses": 3, "location_std": 0.5}, spec)
    gen = torch.Generator().manual_seed(1)
    inputs, targets = torch.rand(64, 1, 16, 16, generator=gen), torch.randint(0, 10, (64, 1), generator=gen)
    model.eval()
    with torch.no_grad():
        expected = 1 - (model(inputs).argmax(-1) == targets).all(-1).float().mean().item()
    scored = sampled_errors(model, inputs, targets, samples=4, chunk=20)
    assert scored.means == pytest.approx(expected)
    # an untrained RAM's answer follows where it looked: sampled paths give other answers than the means
    with torch.no_grad():
        model.train()
        assert not torch.equal(model(inputs).argmax(-1), model.eval()(inputs).argmax(-1))
