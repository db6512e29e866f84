"""One optimizer over K seeds' stacked parameters (attnlab.train.vectorised), and each seed's part of it.

The stacked optimizer acts on every element alone (AdamW, plain SGD), so seed k's slice of its
state is the state a one-seed run's optimizer would hold: `seed_optimizer_state` cuts it out for
that seed's checkpoint, and `load_stacked_states` stacks the seeds' checkpoints back into it.
(Each seed's gradients are clipped alone by `attnlab.train.clipping.clip_gradients_(stacked=True)`.)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from attnlab.errors import RunError
from attnlab.train.loop import make_optimizer, optimizer_like


def stacked_optimizer(template: nn.Module, params: dict[str, Tensor], cfg: Any) -> torch.optim.Optimizer:
    """The run's optimizer over the stacked parameters, grouped and ordered as `make_optimizer`
    orders one model's (AdamW and SGD act on each element alone, so each seed's slice moves as
    its own run's would)."""
    by_id = {id(p): name for name, p in template.named_parameters()}
    single = make_optimizer(template, cfg)
    groups = [
        {**{k: v for k, v in group.items() if k != "params"}, "params": [params[by_id[id(p)]] for p in group["params"]]}
        for group in single.param_groups
    ]
    return optimizer_like(cfg, groups)


def load_stacked_states(opt: torch.optim.Optimizer, states: Sequence[dict[str, Any]]) -> None:
    """Each seed's one-model optimizer state_dict (as its checkpoint holds it) into the stacked optimizer opt.

    Raises:
        RunError: the seeds' scalar states (AdamW's step count) differ, so one optimizer cannot hold them.
    """
    first = states[0]
    stacked: dict[int, dict[str, Any]] = {}
    for index, entry in first["state"].items():
        stacked[index] = {}
        for name, value in entry.items():
            values = [s["state"][index][name] for s in states]
            if torch.is_tensor(value) and value.dim() > 0:
                stacked[index][name] = torch.stack(values)  # (k, ...)
            elif any(not torch.equal(torch.as_tensor(v), torch.as_tensor(value)) for v in values):
                raise RunError(f"the seeds' optimizer states differ in {name!r}; continue them one by one")
            else:
                stacked[index][name] = value
    opt.load_state_dict({"state": stacked, "param_groups": first["param_groups"]})


def seed_optimizer_state(opt: torch.optim.Optimizer, k: int) -> dict[str, Any]:
    """The state_dict a one-seed AdamW would have: every stacked tensor's slice k."""
    full = opt.state_dict()
    state = {
        index: {
            name: value[k] if torch.is_tensor(value) and value.dim() > 0 else value for name, value in entry.items()
        }
        for index, entry in full["state"].items()
    }
    return {"state": state, "param_groups": full["param_groups"]}
