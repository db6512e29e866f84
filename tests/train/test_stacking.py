"""The stacked optimizer's state cut into seeds and put back (attnlab.train.stacking)."""

import pytest
import torch

from attnlab.errors import RunError
from attnlab.train import TrainConfig
from attnlab.train.stacking import load_stacked_states, seed_optimizer_state, stacked_optimizer


def trained_stack(steps=3):
    template = torch.nn.Linear(3, 2)
    params = {name: torch.nn.Parameter(torch.randn(2, *p.shape)) for name, p in template.named_parameters()}
    opt = stacked_optimizer(template, params, TrainConfig(lr=0.1))
    for _ in range(steps):
        opt.zero_grad()
        sum((p**2).sum() for p in params.values()).backward()
        opt.step()
    return template, params, opt


def test_seed_states_stack_back_into_the_optimizer_they_were_cut_from():
    torch.manual_seed(0)
    template, params, opt = trained_stack()
    seeds = [seed_optimizer_state(opt, k) for k in range(2)]
    fresh = stacked_optimizer(template, {n: torch.nn.Parameter(p.detach().clone()) for n, p in params.items()},
                              TrainConfig(lr=0.1))
    load_stacked_states(fresh, seeds)
    for (a, b) in zip(opt.state_dict()["state"].values(), fresh.state_dict()["state"].values()):
        for name in a:
            torch.testing.assert_close(a[name], b[name])
    seeds[1]["state"][0]["step"] = seeds[1]["state"][0]["step"] + 1  # one seed a step ahead
    with pytest.raises(RunError, match="differ in 'step'"):
        load_stacked_states(fresh, seeds)
