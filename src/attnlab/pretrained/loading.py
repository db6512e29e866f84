"""Copying another project's checkpoint into an attnlab module exactly: every key mapped, none left over.

A loader names, for each of the checkpoint's keys, the attnlab parameter or buffer it fills
(`names`: theirs -> ours); `load_mapped` then refuses, in one line, any key the checkpoint has
that the mapping does not know, any mapped key it lacks, and any tensor of the wrong shape.
"""

from __future__ import annotations

from collections.abc import Collection

from torch import Tensor, nn

from attnlab.errors import CheckpointError


def load_mapped(
    model: nn.Module,
    weights: dict[str, Tensor],
    names: dict[str, str],
    *,
    source: str = "checkpoint",
    ignored: Collection[str] = (),
) -> None:
    """Copy the checkpoint's tensors into model through names; any unknown, missing or misshapen key is an error.

    Args:
        model: the attnlab module; every one of its state's entries must be some checkpoint key's.
        weights: the checkpoint's tensors by its own names.
        names: checkpoint name -> the model's state_dict name.
        source: the checkpoint's path or name, at the start of an error.
        ignored: checkpoint keys that carry nothing the model needs (not an error when present).
    Raises:
        CheckpointError: one line naming the keys at fault (the first few, then how many more).
    """
    params = model.state_dict()
    unexpected = [k for k in weights if k not in names and k not in ignored]
    missing = [k for k in names if k not in weights]
    wrong = [
        f"{k} {tuple(weights[k].shape)} (expected {tuple(params[names[k]].shape)})"
        for k in names
        if k in weights and tuple(weights[k].shape) != tuple(params[names[k]].shape)
    ]
    found = (("unexpected keys", unexpected), ("missing keys", missing), ("wrong shapes", wrong))
    problems = [f"{what}: {some(keys)}" for what, keys in found if keys]
    if problems:
        raise CheckpointError(f"{source}: " + "; ".join(problems))
    model.load_state_dict({ours: weights[theirs].to(params[ours].dtype) for theirs, ours in names.items()}, strict=True)


def some(items: list[str], limit: int = 6) -> str:
    """The first `limit` items joined, then how many more."""
    shown = ", ".join(items[:limit])
    return shown + (f" and {len(items) - limit} more" if len(items) > limit else "")
