"""The NTM's fused step (paths "fast" and "compiled" of `ntm.NTM`): its memory part and the backward.

`NTM.step` with `addressing.py` is the readable step; this module computes the same equations in
fewer ops and writes their derivatives out, for `memory.fused` to run as one autograd node per
sequence (eq. numbers of Graves, Wayne, Danihelka 2014, arXiv:1410.5401):

    params   k, beta, g, s, gamma split from each head's row of p_t              `address_forward`
    w^c      softmax_i(beta k^ . M^_i), M^ normalised once per memory (eq. 5-6)
                                                                        `fused.content_weights`
    w^g      lerp(w_{t-1}, w^c, g)                                                         (eq. 7)
    w~       sum_k s_k w^g_{i-(k-s)}: windows of a circularly padded row (eq. 8)  `circular_shift`
    w_t      softmax(gamma log(w~ + eps)) = (w~ + eps)^gamma / sum_j (w~_j + eps)^gamma  (eq. 9)
    d w      the same chain in reverse (eq. 5-9)                                `address_backward`
    M_t      M_{t-1} o prod_h (1 - w_h e_h^T) + sum_h w_h a_h^T (eq. 3-4)         `memory_forward`
    r_t      w^r_t M_t (eq. 2), read after every write
    d M      erasures multiply: each head's factor meets the product of the others `memory_backward`

`steps` hands `memory.fused` the step functions: plain for "fast", through `core.fast.compiled`
(`fused.compiled_steps`, compiled once per process) for "compiled".
"""

from __future__ import annotations

from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor

from attnlab.memory import fused
from attnlab.memory.addressing import SHARPEN_EPS


class FusedSizes(NamedTuple):
    """The sizes the fused step needs (plain ints: a compiled step specialises on them)."""

    word_size: int
    shift_range: int
    num_reads: int
    num_writes: int


def shift_windows(weights: Tensor, s: int) -> Tensor:
    """The 2s+1 circular neighbours of every slot: windows[..., i, k] = weights[..., (i + k - s) mod n].

    Args:
        weights: (b, r, n) weightings.
        s: the shift range.
    Returns:
        (b, r, n, 2s+1) a view of the circularly padded rows.
    """
    n = weights.shape[-1]
    if s == 0:
        padded = weights
    elif s <= n:
        padded = torch.cat([weights[..., n - s :], weights, weights[..., :s]], -1)  # (b, r, n + 2s)
    else:  # shifts longer than the ring wrap around it more than once
        padded = weights[..., torch.arange(-s, n + s, device=weights.device) % n]  # (b, r, n + 2s)
    return padded.unfold(-1, 2 * s + 1, 1)  # (b, r, n, 2s+1)


def circular_shift(weights: Tensor, shift_weights: Tensor) -> Tensor:
    """Eq. 8, w~_i = sum_k s_k w_{i - (k - s)}, as one product with the windows; equals `addressing.shift`.

    Args:
        weights: (b, r, n) gated weightings.
        shift_weights: (b, r, 2s+1) the distribution over the shifts -s..s.
    Returns:
        (b, r, n) shifted weightings.
    """
    windows = shift_windows(weights, shift_weights.shape[-1] // 2)  # (b, r, n, 2s+1)
    return (windows * shift_weights.flip(-1)[..., None, :]).sum(-1)  # (b, r, n)


class Address(NamedTuple):
    """What `address_backward` needs from `address_forward`."""

    content: Tensor  # (b, r, n) w^c
    key: Tensor  # (b, r, w) k
    strength_raw: Tensor  # (b, r, 1) beta before its softplus
    gate: Tensor  # (b, r, 1) g
    previous: Tensor  # (b, r, n) w_{t-1}
    gated: Tensor  # (b, r, n) w^g
    shifts: Tensor  # (b, r, 2s+1) s
    shifted: Tensor  # (b, r, n) w~ + eps
    log_shifted: Tensor  # (b, r, n) log(w~ + eps)
    gamma_raw: Tensor  # (b, r, 1) gamma before 1 + softplus
    gamma: Tensor  # (b, r, 1)
    weights: Tensor  # (b, r, n) w_t


def address_forward(params: Tensor, memory_unit: Tensor, previous: Tensor, word_size: int, s: int) -> Address:
    """`NTM._address` (eq. 5-9) in fewer ops, on a memory normalised by `fused.unit_rows`.

    Sharpening (eq. 9) is w~^gamma / sum_j w~_j^gamma = softmax(gamma log w~): a renormalisation of
    a weighting that already sums to one, done stably for any gamma, not a second attention.

    Args:
        params: (b, r, read_size) the heads' k, beta, g, s, gamma before their nonlinearities.
        memory_unit: (b, n, w) the normalised memory to address.
        previous: (b, r, n) the heads' weightings of the previous step.
        word_size: w.
        s: the shift range.
    Returns:
        Address; its weights (b, r, n) sum to one per row.
    """
    key, strength_raw, gate_raw, shift_raw, gamma_raw = params.split([word_size, 1, 1, 2 * s + 1, 1], -1)
    content = fused.content_weights(key, memory_unit, F.softplus(strength_raw[..., 0]))  # (b, r, n)
    gate = torch.sigmoid(gate_raw)  # (b, r, 1)
    gated = torch.lerp(previous, content, gate)  # (b, r, n): (1 - g) w_{t-1} + g w^c
    shifts = torch.softmax(shift_raw, -1)  # (b, r, 2s+1): a softmax over shifts, not slots
    shifted = circular_shift(gated, shifts) + SHARPEN_EPS  # (b, r, n)
    log_shifted = torch.log(shifted)
    gamma = 1 + F.softplus(gamma_raw)  # (b, r, 1)
    weights = torch.softmax(gamma * log_shifted, -1)  # (b, r, n): eq. 9 renormalised, not over keys
    return Address(
        content, key, strength_raw, gate, previous, gated, shifts, shifted, log_shifted, gamma_raw, gamma, weights
    )


def address_backward(d_weights: Tensor, saved: Address, memory_unit: Tensor, s: int) -> tuple[Tensor, Tensor, Tensor]:
    """Gradients of `address_forward`.

    Args:
        d_weights: (b, r, n) gradient of the weights.
        saved: the forward's Address.
        memory_unit: (b, n, w) the M^ it addressed.
        s: the shift range.
    Returns:
        d params (b, r, read_size), d M^ (b, n, w), d w_{t-1} (b, r, n).
    """
    a = saved
    d_logits = fused.softmax_backward(d_weights, a.weights)  # (b, r, n): of gamma log w~
    d_gamma = (d_logits * a.log_shifted).sum(-1, keepdim=True)  # (b, r, 1)
    d_shifted = d_logits * a.gamma / a.shifted  # (b, r, n)
    d_gated = circular_shift(d_shifted, a.shifts.flip(-1))  # (b, r, n): the shift's transpose
    d_shifts = (shift_windows(a.gated, s) * d_shifted[..., None]).sum(-2).flip(-1)  # (b, r, 2s+1)
    d_gate = (d_gated * (a.content - a.previous)).sum(-1, keepdim=True)  # (b, r, 1)
    strength = F.softplus(a.strength_raw[..., 0])  # (b, r)
    d_key, d_strength, d_memory_unit = fused.content_backward(d_gated * a.gate, a.content, a.key, strength, memory_unit)
    d_params = torch.cat(
        [
            d_key,
            d_strength[..., None] * torch.sigmoid(a.strength_raw),  # softplus' = sigmoid
            d_gate * a.gate * (1 - a.gate),
            fused.softmax_backward(d_shifts, a.shifts),
            d_gamma * torch.sigmoid(a.gamma_raw),
        ],
        -1,
    )  # (b, r, read_size)
    return d_params, d_memory_unit, d_gated * (1 - a.gate)


def memory_forward(
    params: Tensor, state: fused.Tensors, sizes: FusedSizes, after: fused.Tensors | None = None
) -> tuple[Tensor, fused.Tensors, tuple]:
    """The NTM's memory part of one step: write heads, then read heads (eq. 2-9).

    Args:
        params: (b, P) every head's parameters (the heads layer's output).
        state: memory M (b, n, w), its `unit_rows` M^ (b, n, w) and scales rho (b, n, 1), read
            weights (b, R, n), write weights (b, Wn, n).
        sizes: the machine's sizes.
        after: the state this step produced, when redoing the step for its backward: the new
            memory is taken from it instead of being written again.
    Returns:
        reads (b, R, w), the new state, and what `memory_backward` needs.
    """
    memory, memory_unit, rho, read_weights, write_weights = state
    w, s, num_reads, num_writes = sizes
    b, read_size = params.shape[0], w + 3 + 2 * s + 1
    read_params, write_params = params.split([num_reads * read_size, num_writes * (read_size + 2 * w)], -1)
    new_memory, new_unit = memory, memory_unit
    written: tuple[Any, ...] = ()
    if num_writes:
        write_params = write_params.view(b, num_writes, read_size + 2 * w)  # (b, Wn, write_size)
        address, erase_raw, add = write_params.split([read_size, w, w], -1)  # (b, Wn, .)
        write = address_forward(address, memory_unit, write_weights, w, s)
        write_weights, erase = write.weights, torch.sigmoid(erase_raw)  # (b, Wn, n), (b, Wn, w)
        factors = 1 - write_weights[..., None] * erase[..., None, :]  # (b, Wn, n, w): erasures multiply
        keep = factors[:, 0] if num_writes == 1 else factors.prod(1)  # (b, n, w)
        if after is None:
            new_memory = memory * keep + write_weights.transpose(1, 2) @ add  # (b, n, w): adds sum
            new_unit, rho = fused.unit_rows(new_memory)  # (b, n, w), (b, n, 1)
        else:
            new_memory, new_unit, rho = after[:3]
        written = (write, erase, add, factors, keep)
    read = address_forward(read_params.view(b, num_reads, read_size), new_unit, read_weights, w, s)
    reads = read.weights @ new_memory  # (b, R, w)
    saved = (memory, memory_unit, new_memory, new_unit, rho, read, *written)
    return reads, (new_memory, new_unit, rho, read.weights, write_weights), saved


def memory_backward(
    d_reads: Tensor, d_state: fused.Tensors, saved: tuple, sizes: FusedSizes
) -> tuple[Tensor, fused.Tensors]:
    """Gradients of `memory_forward`: d params (b, P) and the gradient of the state it started from."""
    d_memory, d_unit, d_rho, d_read_weights, d_write_weights = d_state  # rho feeds no equation: d_rho = 0
    memory, memory_unit, new_memory, new_unit, rho, read = saved[:6]
    s, num_writes = sizes.shift_range, sizes.num_writes
    d_read_weights = d_read_weights + d_reads @ new_memory.transpose(1, 2)  # (b, R, n)
    d_memory = d_memory + read.weights.transpose(1, 2) @ d_reads  # (b, n, w)
    d_read_params, d_unit_read, d_read_prev = address_backward(d_read_weights, read, new_unit, s)
    d_unit = d_unit + d_unit_read  # (b, n, w)
    if not num_writes:
        return d_read_params.flatten(1), (d_memory, d_unit, d_rho, d_read_prev, d_write_weights)
    write, erase, add, factors, keep = saved[6:]
    d_memory = d_memory + fused.unit_rows_backward(d_unit, new_unit, rho)  # (b, n, w) of M_t
    d_keep = d_memory * memory  # (b, n, w)
    d_factors = d_keep[:, None] if num_writes == 1 else d_keep[:, None] * fused.product_of_others(factors, 1)
    d_write_weights = (
        d_write_weights + add @ d_memory.transpose(1, 2) - (d_factors * erase[..., None, :]).sum(-1)
    )  # (b, Wn, n)
    d_add = write.weights @ d_memory  # (b, Wn, w)
    d_erase = -(d_factors * write.weights[..., None]).sum(-2)  # (b, Wn, w)
    d_address, d_unit_prev, d_write_prev = address_backward(d_write_weights, write, memory_unit, s)
    d_write_params = torch.cat([d_address, d_erase * erase * (1 - erase), d_add], -1)  # (b, Wn, write_size)
    d_params = torch.cat([d_read_params.flatten(1), d_write_params.flatten(1)], -1)  # (b, P)
    return d_params, (d_memory * keep, d_unit_prev, d_rho, d_read_prev, d_write_prev)


# The compiled backward redoes each step from its two matmul outputs and the states before and
# after it: cheaper here than passing dozens of saved tensors through a compiled call.
steps = fused.StepMaker(memory_forward, memory_backward, compiled_recomputes=True, name="NTM fused step")
