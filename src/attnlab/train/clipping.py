"""Gradient clipping of a training step: one home for train.clip_norm and train.clip_each.

All the gradients together down to a total norm (`torch.nn.utils`), each seed alone when K seeds
train as one model (`clip_per_seed`), or each weight matrix alone by its largest singular value
(`clip_each_`, as MemN2N's released code clipped), with the groups a model names (`clip_groups`)
clipped as one matrix.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import Tensor, nn


@torch.no_grad()
def clip_gradients_(
    params: Sequence[Tensor],
    max_norm: float,
    each: bool = False,
    stacked: bool = False,
    norm: Tensor | None = None,
    groups: Sequence[Sequence[Tensor]] = (),
) -> None:
    """A run's gradient clipping (train.clip_norm, train.clip_each), in place; max_norm <= 0: none.

    All the gradients together down to total norm max_norm (norm: their total norm, if computed
    already), or with each every gradient alone (`clip_each_`; groups: parameters clipped as one
    matrix there, `clip_groups`). stacked: the parameters hold K seeds along their first dimension
    (attnlab.train.vectorised); each seed is clipped alone.
    """
    if max_norm <= 0:
        return
    if each:
        clip_each_(params, max_norm, stacked, groups)
    elif stacked:
        clip_per_seed(params, max_norm)
    else:
        grads = [p.grad for p in params if p.grad is not None]
        nn.utils.clip_grads_with_norm_(params, max_norm, nn.utils.get_total_norm(grads) if norm is None else norm)


@torch.no_grad()
def clip_per_seed(stacked: Sequence[Tensor], max_norm: float) -> None:
    """clip_grad_norm_ for each seed alone: every seed's gradients scaled by its own total norm."""
    grads = [p.grad for p in stacked if p.grad is not None]
    if not grads:
        return
    norms = torch.stack([g.flatten(1).norm(dim=1) for g in grads]).norm(dim=0)  # (k,)
    scale = (max_norm / (norms + 1e-6)).clamp(max=1.0)  # (k,)
    for g in grads:
        g.mul_(scale.view(-1, *([1] * (g.dim() - 1))))


@torch.no_grad()
def clip_each_(
    params: Sequence[Tensor], max_norm: float, stacked: bool = False, groups: Sequence[Sequence[Tensor]] = ()
) -> None:
    """Scale each parameter's gradient alone down to norm max_norm: a matrix's norm is its largest
    singular value (a tensor of more dimensions is read as a matrix of its first dimension's rows),
    a vector's its L2 norm. MemN2N's released code clipped each weight matrix this way.

    groups: parameters (of params, or not) clipped as one matrix, their rows stacked (each read as
    a matrix of its first dimension's rows; the same columns in a group): one norm, one scale.
    stacked: the parameters hold K seeds along their first dimension (attnlab.train.vectorised);
    each seed's slice is clipped alone.
    """
    lead = 1 if stacked else 0
    grouped = {id(p) for group in groups for p in group}
    units = [list(group) for group in groups] + [[p] for p in params if id(p) not in grouped]
    for unit in units:
        grads = [p.grad for p in unit if p.grad is not None]
        if not grads:
            continue
        if len(grads) > 1 or grads[0].dim() - lead >= 2:
            rows = torch.cat([g.reshape(*g.shape[: lead + 1], -1) for g in grads], lead)  # ([k,] rows, cols)
            norm = torch.linalg.matrix_norm(rows, ord=2)  # (k,) or ()
        else:
            norm = torch.linalg.vector_norm(grads[0].reshape(*grads[0].shape[:lead], -1), dim=-1)  # (k,) or ()
        scale = (max_norm / (norm + 1e-6)).clamp(max=1.0)
        for g in grads:
            g.mul_(scale.reshape(*scale.shape, *([1] * (g.dim() - lead))))


def clip_groups(model: nn.Module, named: Mapping[str, Tensor] | None = None) -> list[tuple[Tensor, ...]]:
    """The parameters a model asks train.clip_each to clip as one matrix: its `clip_groups()` gives
    their names, looked up in named (default: the model's own parameters; the vectorised trainer
    passes its stacked ones). A model without the method has none."""
    names = getattr(model, "clip_groups", None)
    if names is None:
        return []
    params = dict(model.named_parameters()) if named is None else named
    return [tuple(params[name] for name in group) for group in names()]
