"""The DNC's fused step (paths "fast" and "compiled" of `dnc.DNC`): its memory part and the backward.

`DNC.step` is the readable step; `memory_forward` runs the same equation functions of
`addressing.py` in the same order, on memories normalised once (`fused.unit_rows`) and with the
link's off-diagonal mask built once per sequence, and `memory_backward` writes out their
derivatives, for `memory.fused` to run as one autograd node per sequence. Each block of
`memory_backward` undoes one Methods subsection of Graves et al. 2016 (Nature 538), last first:

    "Read weighting"            r = w^r M_t, w^r = pi[1] b + pi[2] c^r + pi[3] f
    "Temporal memory linkage"   f = L w^r_{t-1}, b = L^T w^r_{t-1}; p_t; L_t
    "Reading and writing"       M_t = M_{t-1} o (E - w^w e^T) + w^w v^T
    "Write weighting"           w^w = g^w (g^a a + (1 - g^a) c^w)
    "Dynamic memory allocation" a_t from the sorted usage                           `allocation_backward`
                                u_t = (u + w^w - u w^w) prod_i (1 - f^i w^{r,i})
    "Interface parameters"      the squashing functions, in the order of the interface's fields

`steps` hands `memory.fused` the step functions: plain for "fast", through `core.fast.compiled`
(`fused.compiled_steps`, compiled once per process) for "compiled".
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

from attnlab.memory import fused
from attnlab.memory.addressing import (
    directional_weights,
    erase_and_add,
    interface_fields,
    interface_sizes,
    link_update,
    precedence_update,
    read_weighting,
    sorted_allocation,
    usage_update,
    write_weighting,
)


class FusedSizes(NamedTuple):
    """The sizes the fused step needs (plain ints: a compiled step specialises on them), and a mask."""

    num_reads: int
    word_size: int
    off_diagonal: Tensor  # (N, N) 1 - I, built once per sequence: a step loads it instead of comparing indices


def allocation_backward(d_alloc: Tensor, order: Tensor, sorted_usage: Tensor, products: Tensor) -> Tensor:
    """Gradient of `allocation` for the usage, without dividing by usages (zeros are common).

    With u the sorted usages, P_j = prod_{i<j} u_i and C_k = d a_k (1 - u_k) (sorted order):

        d u_j = P_j (S_j - d a_j),   S_j = sum_{k>j} C_k prod_{j<i<k} u_i = C_{j+1} + u_{j+1} S_{j+1}

    The recurrence for S runs backwards over the slots; it is solved as a scan of the affine maps
    x -> C_{j+1} + u_{j+1} x, composed in log2(N) doubling rounds (exact with zero usages).

    Args:
        d_alloc: (b, N) gradient of a_t.
        order, sorted_usage, products: from `sorted_allocation`.
    Returns:
        (b, N) gradient of u_t.
    """
    d_sorted = d_alloc.gather(-1, order)  # (b, N)
    later = (d_sorted * (1 - sorted_usage))[:, 1:]  # (b, N - 1): C_{j+1}
    # map j is x -> spread_j + scale_j x; after the rounds it is the composition of maps j..N-1,
    # and the last map is the constant 0, so spread_j = S_j
    scale = torch.cat([sorted_usage[:, 1:], torch.zeros_like(sorted_usage[:, :1])], -1)  # (b, N): u_{j+1}, 0 last
    spread = torch.cat([later, torch.zeros_like(sorted_usage[:, :1])], -1)  # (b, N): C_{j+1}, 0 last
    N, step = sorted_usage.shape[-1], 1
    while step < N:
        ahead_scale = torch.cat(
            [scale[:, step:], torch.ones_like(scale[:, :step])], -1
        )  # (b, N): identity past the end
        ahead_spread = torch.cat([spread[:, step:], torch.zeros_like(spread[:, :step])], -1)  # (b, N)
        spread, scale, step = spread + scale * ahead_spread, scale * ahead_scale, 2 * step
    d_sorted_usage = products * (spread - d_sorted)  # (b, N)
    return torch.zeros_like(d_sorted_usage).scatter(-1, order, d_sorted_usage)  # (b, N) in slot order


def memory_forward(
    params: Tensor, state: fused.Tensors, sizes: FusedSizes, after: fused.Tensors | None = None
) -> tuple[Tensor, fused.Tensors, tuple]:
    """The DNC's memory part of one step, through the equation functions of `addressing` (`DNC.step`'s order).

    Args:
        params: (b, P) the interface vector xi_t.
        state: M (b, N, W), its `unit_rows` M^ (b, N, W) and scales rho (b, N, 1), u (b, N),
            L (b, N, N), p (b, N), w^r (b, R, N), w^w (b, N); all of step t-1.
        sizes: the computer's sizes.
        after: the state this step produced, when redoing the step for its backward: usage, the
            memory, the links and the precedence are taken from it instead of being updated again.
    Returns:
        reads (b, R, W), the new state, and what `memory_backward` needs.
    """
    memory, memory_unit, _, usage_prev, link, precedence, read_prev, write_prev = state
    xi = interface_fields(params, sizes.num_reads, sizes.word_size)
    usage = usage_update(usage_prev, write_prev, read_prev, xi.free_gates) if after is None else after[3]  # (b, N)
    alloc, *alloc_sorted = sorted_allocation(usage)  # (b, N)
    write_content = fused.content_weights(xi.write_key, memory_unit, xi.write_strength)  # (b, 1, N)
    write_weights = write_weighting(write_content[:, 0], alloc, xi.alloc_gate, xi.write_gate)  # (b, N)
    if after is None:
        new_memory = erase_and_add(memory, write_weights, xi.erase, xi.add)  # (b, N, W)
        new_unit, new_rho = fused.unit_rows(new_memory)  # (b, N, W), (b, N, 1)
        new_link = link_update(link, precedence, write_weights, sizes.off_diagonal)  # (b, N, N)
        new_precedence = precedence_update(precedence, write_weights)  # (b, N)
    else:
        new_memory, new_unit, new_rho, _, new_link, new_precedence = after[:6]
    forward, backward = directional_weights(new_link, read_prev)  # (b, R, N) each
    read_content = fused.content_weights(xi.read_keys, new_unit, xi.read_strengths)  # (b, R, N)
    read_weights = read_weighting(xi.modes, backward, read_content, forward)  # (b, R, N)
    reads = read_weights @ new_memory  # (b, R, W)
    new_state = (new_memory, new_unit, new_rho, usage, new_link, new_precedence, read_weights, write_weights)
    saved = (params, alloc, alloc_sorted, write_content, read_content, forward, backward, state, new_state)
    return reads, new_state, saved


def memory_backward(
    d_reads: Tensor, d_state: fused.Tensors, saved: tuple, sizes: FusedSizes
) -> tuple[Tensor, fused.Tensors]:
    """Gradients of `memory_forward`: d xi (b, P) and the gradient of the state it started from.

    Each block undoes one equation of `memory_forward`, last first; rho feeds no equation, so
    its gradient stays zero. The interface's squashed fields are redone from xi (cheap, and fewer
    tensors to keep).
    """
    params, alloc, alloc_sorted, write_content, read_content, forward, backward, state, new_state = saved
    xi = interface_fields(params, sizes.num_reads, sizes.word_size)
    memory, memory_unit, _, usage_prev, link, precedence, read_prev, write_prev = state
    new_memory, new_unit, new_rho, _, new_link, _, read_weights, write_weights = new_state
    d_memory, d_unit, d_rho, d_usage, d_link, d_precedence, d_read, d_write = d_state
    # reads r = w^r M_t and the read weighting w^r = pi[1] b + pi[2] c^r + pi[3] f
    d_read = d_read + d_reads @ new_memory.transpose(1, 2)  # (b, R, N)
    d_memory = d_memory + (read_weights[..., None] * d_reads[:, :, None, :]).sum(1)  # (b, N, W)
    parts = (backward, read_content, forward)
    d_modes = torch.stack([(d_read * part).sum(-1) for part in parts], -1)  # (b, R, 3)
    d_backward, d_content, d_forward = (xi.modes[..., k : k + 1] * d_read for k in range(3))  # (b, R, N) each
    d_read_keys, d_read_strengths, d_unit_read = fused.content_backward(
        d_content, read_content, xi.read_keys, xi.read_strengths, new_unit
    )  # (b, R, W), (b, R), (b, N, W)
    d_memory = d_memory + fused.unit_rows_backward(d_unit + d_unit_read, new_unit, new_rho)  # (b, N, W)
    # directional weights f = L w^r_{t-1}, b = L^T w^r_{t-1}
    d_link = d_link + (
        d_forward[..., None] * read_prev[:, :, None, :] + read_prev[..., None] * d_backward[:, :, None, :]
    ).sum(1)  # (b, N, N)
    d_read_prev = d_forward @ new_link + d_backward @ new_link.transpose(1, 2)  # (b, R, N)
    # precedence p_t = (1 - sum w^w) p_{t-1} + w^w
    d_precedence_prev = d_precedence * (1 - write_weights.sum(-1, keepdim=True))  # (b, N)
    d_write = d_write + d_precedence - (d_precedence * precedence).sum(-1, keepdim=True)  # (b, N)
    # links L_t = ((1 - w_i - w_j) L_{t-1} + w_i p_j) o (1 - I)
    d_new = d_link * sizes.off_diagonal  # (b, N, N)
    d_link_prev = d_new * (1 - write_weights[:, :, None] - write_weights[:, None, :])  # (b, N, N)
    d_write = d_write + (d_new * (precedence[:, None, :] - link)).sum(-1) - (d_new * link).sum(-2)  # (b, N)
    d_precedence_prev = d_precedence_prev + (write_weights[:, :, None] * d_new).sum(1)  # (b, N)
    # memory M_t = M_{t-1} o (1 - w^w e^T) + w^w v^T
    d_times_memory = d_memory * memory  # (b, N, W)
    d_memory_prev = d_memory * (1 - write_weights[:, :, None] * xi.erase[:, None, :])  # (b, N, W)
    d_write = d_write + (d_memory * xi.add[:, None, :] - d_times_memory * xi.erase[:, None, :]).sum(-1)
    d_erase = -(write_weights[:, :, None] * d_times_memory).sum(1)  # (b, W)
    d_add = (write_weights[:, :, None] * d_memory).sum(1)  # (b, W)
    # write weighting w^w = g^w (g^a a + (1 - g^a) c^w)
    ga, gw, write_c = xi.alloc_gate[:, None], xi.write_gate[:, None], write_content[:, 0]  # (b, 1) x 2, (b, N)
    d_inner = d_write * gw  # (b, N)
    d_write_gate = (d_write * (ga * alloc + (1 - ga) * write_c)).sum(-1, keepdim=True)  # (b, 1)
    d_alloc_gate = (d_inner * (alloc - write_c)).sum(-1, keepdim=True)  # (b, 1)
    d_write_key, d_write_strength, d_unit_prev = fused.content_backward(
        (d_inner * (1 - ga))[:, None], write_content, xi.write_key, xi.write_strength, memory_unit
    )  # (b, 1, W), (b, 1), (b, N, W)
    # usage u_t = (u + w^w - u w^w) prod_i (1 - f^i w^{r,i}), then the allocation a_t from it
    d_usage = d_usage + allocation_backward(d_inner * ga, *alloc_sorted)  # (b, N)
    factors = 1 - xi.free_gates[:, :, None] * read_prev  # (b, R, N)
    kept = usage_prev + write_prev - usage_prev * write_prev  # (b, N)
    d_kept, d_retention = d_usage * factors.prod(1), d_usage * kept  # (b, N) each
    d_factors = d_retention[:, None] * fused.product_of_others(factors, 1)  # (b, R, N)
    d_read_prev = d_read_prev - d_factors * xi.free_gates[:, :, None]  # (b, R, N)
    d_free = -(d_factors * read_prev).sum(-1)  # (b, R)
    # the interface's squashing functions, in the order of its fields
    raw = params.split(interface_sizes(sizes.num_reads, sizes.word_size), -1)

    def d_sigmoid(d: Tensor, y: Tensor) -> Tensor:
        return d * y * (1 - y)

    d_params = torch.cat(
        [
            d_read_keys.flatten(1),
            d_read_strengths * torch.sigmoid(raw[1]),  # oneplus' = sigmoid
            d_write_key.flatten(1),
            d_write_strength * torch.sigmoid(raw[3]),
            d_sigmoid(d_erase, xi.erase),
            d_add,
            d_sigmoid(d_free, xi.free_gates),
            d_sigmoid(d_alloc_gate, ga),
            d_sigmoid(d_write_gate, gw),
            fused.softmax_backward(d_modes, xi.modes).flatten(1),
        ],
        -1,
    )  # (b, P)
    d_prev = (
        d_memory_prev,
        d_unit_prev,
        d_rho,
        d_kept * (1 - write_prev),
        d_link_prev,
        d_precedence_prev,
        d_read_prev,
        d_kept * (1 - usage_prev),
    )
    return d_params, d_prev


# The compiled backward takes each step's saved tensors: redoing the DNC's step (its sort and
# allocation, content and directional weightings) costs more than passing them.
steps = fused.StepMaker(memory_forward, memory_backward, compiled_recomputes=False, name="DNC fused step")
