"""Addressing of NTM and DNC heads: the weightings over memory slots and the memory updates.

Neural Turing Machine (Graves, Wayne, Danihelka 2014, arXiv:1410.5401, sec. 3.3):

    w^c_i     = softmax over slots i of beta * K[k, M_i]      eq. 5-6  `content_weights`
    w^g       = g w^c + (1 - g) w_{t-1}                       eq. 7    `interpolate`
    w~_i      = sum_j w^g_j s(i - j)   (indices mod n)        eq. 8    `shift`
    w_i       = w~_i^gamma / sum_j w~_j^gamma                 eq. 9    `sharpen`

K is cosine similarity, beta >= 0 the key strength, g in [0, 1] the interpolation gate, s a
distribution over the 2s+1 shifts -s..s, gamma >= 1 the sharpening exponent. The cosine score and
the softmax of content addressing are the attention core's (`core.attend` with score "cosine"),
so content addressing is one more score function, not a second softmax. Location addressing
(eq. 7-9) is no softmax: it mixes, rotates and renormalises weightings that already sum to one.

Differentiable Neural Computer (Graves et al. 2016, Nature 538): the equation functions of its
Methods subsections, which its readable step (`dnc.DNC.step`) and its fused step (`dnc_steps`)
both call; `dnc`'s docstring maps each subsection's equations to them: `interface_fields`,
`usage_update`, `allocation` (`sorted_allocation`), `write_weighting`, `erase_and_add`,
`precedence_update`, `link_update`, `directional_weights`, `read_weighting`.
The read modes' softmax is over three modes, not slots.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor

from attnlab.core import attend

SHARPEN_EPS = 1e-8  # offset added to every weight before sharpening (eq. 9)


def content_weights(keys: Tensor, memory: Tensor, strength: Tensor) -> Tensor:
    """Each head's weighting over memory slots by cosine similarity of its key with every row.

    Args:
        keys: (b, r, w) one lookup key per head (r heads, w word size).
        memory: (b, n, w) the memory matrix, n slots of w.
        strength: (b, r) key strengths beta >= 0 (1 + softplus of the controller's output).
    Returns:
        (b, r, n) weightings; each row sums to one. Zero keys or zero rows score 0 (no NaN).
    """
    q = keys[:, :, None, :]  # (b, r, 1, w)
    m = memory[:, None]  # (b, 1, n, w): every head reads the same memory
    beta = strength[:, :, None, None]  # (b, r, 1, 1)
    weights = attend(q, m, m, score="cosine", score_args={"strength": beta}, need_weights=True).weights
    assert weights is not None  # need_weights=True always returns them
    return weights[:, :, 0]  # (b, r, n)


def interpolate(content: Tensor, previous: Tensor, gate: Tensor) -> Tensor:
    """Gate between this step's content weighting and the previous step's weighting (eq. 7).

    Args:
        content: (b, r, n) content weightings w^c.
        previous: (b, r, n) the head's weightings of the previous step w_{t-1}.
        gate: (b, r) interpolation gates g in [0, 1]; 1 keeps only the content weighting.
    Returns:
        (b, r, n) gated weightings w^g.
    """
    g = gate[..., None]  # (b, r, 1)
    return g * content + (1 - g) * previous


def shift(weights: Tensor, shift_weights: Tensor) -> Tensor:
    """Rotate each weighting by a distribution over shifts: circular convolution (eq. 8).

    Args:
        weights: (b, r, n) gated weightings w^g.
        shift_weights: (b, r, 2s+1) the shift distribution s; entry k weighs a shift by k - s, so
            a one-hot at k = s + 1 moves the weight of slot i to slot i + 1 (mod n).
    Returns:
        (b, r, n) shifted weightings w~.
    """
    span = shift_weights.shape[-1]
    if span % 2 == 0:
        raise ValueError(f"shift_weights must have an odd last dim 2s+1 (shifts -s..s); got {span}")
    n, s = weights.shape[-1], span // 2
    laps = -(-s // n)  # whole turns of the ring needed on each side to cover a shift of s
    ring = weights.repeat(1, 1, 2 * laps + 1)  # (b, r, (2 laps + 1) n)
    padded = ring[..., laps * n - s : (laps + 1) * n + s]  # (b, r, n + 2s): padded[m] = w[(m - s) mod n]
    windows = padded.unfold(-1, span, 1)  # (b, r, n, 2s+1): windows[i, k] = w[i + k - s]
    # w~_i = sum_k s_k w[i - (k - s)] = sum_k windows[i, 2s - k] s_k, so the shifts meet the window reversed
    return (windows @ shift_weights.flip(-1)[..., None])[..., 0]  # (b, r, n)


def sharpen(weights: Tensor, gamma: Tensor, eps: float = SHARPEN_EPS) -> Tensor:
    """Raise each weighting to gamma and renormalise, undoing the blur of the shift (eq. 9).

    The weights are offset by eps and divided by their row maximum before the power. Dividing
    leaves the result unchanged (it is scale free) but keeps the largest term at 1, so tiny
    weights and large gamma cannot underflow to a 0/0 row; an all-zero row becomes uniform.
    The maximum is detached because the result does not depend on it.

    Args:
        weights: (b, r, n) shifted weightings w~ >= 0.
        gamma: (b, r) sharpening exponents >= 1 (1 + softplus of the controller's output).
        eps: offset added to every weight before the power.
    Returns:
        (b, r, n) sharpened weightings; each row sums to one.
    """
    if bool((gamma < 1).any()):
        raise ValueError(f"gamma must be >= 1 (1 + softplus of the controller); got min {gamma.min().item():.4g}")
    shifted = weights + eps  # (b, r, n)
    scaled = shifted / shifted.amax(-1, keepdim=True).detach()  # (b, r, n), max 1
    powered = scaled.pow(gamma[..., None])  # (b, r, n)
    return powered / powered.sum(-1, keepdim=True)


# ---- the DNC ----------------------------------------------------------------------------------


def usage_update(usage: Tensor, write_weights: Tensor, read_weights: Tensor, free_gates: Tensor) -> Tensor:
    """Memory usage after the last write and this step's frees ("Dynamic memory allocation").

        psi = prod_i (1 - f^i w^{r,i}_{t-1}),   u_t = (u_{t-1} + w^w_{t-1} - u_{t-1} o w^w_{t-1}) o psi

    Args:
        usage: (b, N) u_{t-1}.
        write_weights: (b, N) w^w_{t-1}.
        read_weights: (b, R, N) w^r_{t-1}.
        free_gates: (b, R) f_t in [0, 1].
    Returns:
        (b, N) u_t in [0, 1].
    """
    retention = (1 - free_gates[:, :, None] * read_weights).prod(1)  # (b, N) psi
    return (usage + write_weights - usage * write_weights) * retention


def allocation(usage: Tensor) -> Tensor:
    """Allocation weighting: the least used slots get the weight ("Dynamic memory allocation").

        phi = argsort(u) ascending,   a[phi_j] = (1 - u[phi_j]) prod_{i<j} u[phi_i]

    Ties: the sort is stable, so equal usages keep index order (the lower index is freer); the
    result never depends on how an unstable sort would order equal values. The values are the
    paper's exactly (no eps remapping of u). Gradients flow through the sorted usage values only;
    the permutation phi is a constant of the step, as in the paper.

    Args:
        usage: (b, N) u_t in [0, 1].
    Returns:
        (b, N) a_t, non-negative, summing to at most 1.
    """
    return sorted_allocation(usage)[0]


def sorted_allocation(usage: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """`allocation`, with the free list and the sorted quantities its gradient needs.

    Args:
        usage: (b, N) u_t in [0, 1].
    Returns:
        a_t (b, N); phi (b, N) the slot indices by ascending usage; u[phi] (b, N); and the
        exclusive products prod_{i<j} u[phi_i] (b, N).
    """
    order = torch.sort(usage.detach(), dim=-1, stable=True).indices  # (b, N) phi
    sorted_usage = usage.gather(-1, order)  # (b, N)
    before = torch.cat([torch.ones_like(sorted_usage[:, :1]), sorted_usage[:, :-1]], dim=-1)  # (b, N)
    products = before.cumprod(-1)  # (b, N) exclusive product
    sorted_alloc = (1 - sorted_usage) * products  # (b, N)
    alloc = torch.zeros_like(sorted_alloc).scatter(-1, order, sorted_alloc)  # (b, N) back to slot order
    return alloc, order, sorted_usage, products


def write_weighting(content: Tensor, alloc: Tensor, alloc_gate: Tensor, write_gate: Tensor) -> Tensor:
    """Write weighting ("Write weighting"): w^w = g^w (g^a a + (1 - g^a) c^w).

    Args:
        content: (b, N) c^w, content weighting of the write key on M_{t-1}.
        alloc: (b, N) a_t.
        alloc_gate: (b,) g^a in [0, 1].
        write_gate: (b,) g^w in [0, 1].
    Returns:
        (b, N) w^w_t.
    """
    ga, gw = alloc_gate[:, None], write_gate[:, None]  # (b, 1)
    return gw * (ga * alloc + (1 - ga) * content)


def erase_and_add(memory: Tensor, write_weights: Tensor, erase: Tensor, add: Tensor) -> Tensor:
    """Memory write ("Reading and writing to memory"): M_t = M_{t-1} o (E - w^w e^T) + w^w v^T.

    Args:
        memory: (b, N, W) M_{t-1}.
        write_weights: (b, N) w^w_t.
        erase: (b, W) e_t in [0, 1].
        add: (b, W) v_t, the write vector.
    Returns:
        (b, N, W) M_t.
    """
    w = write_weights[:, :, None]  # (b, N, 1)
    return memory * (1 - w * erase[:, None, :]) + w * add[:, None, :]  # (b, N, W)


def precedence_update(precedence: Tensor, write_weights: Tensor) -> Tensor:
    """Precedence weighting ("Temporal memory linkage"): p_t = (1 - sum_i w^w[i]) p_{t-1} + w^w.

    Args:
        precedence: (b, N) p_{t-1}.
        write_weights: (b, N) w^w_t.
    Returns:
        (b, N) p_t: how much each slot was the last one written.
    """
    return (1 - write_weights.sum(-1, keepdim=True)) * precedence + write_weights


def link_update(
    link: Tensor, precedence_prev: Tensor, write_weights: Tensor, off_diagonal: Tensor | None = None
) -> Tensor:
    """Temporal link matrix ("Temporal memory linkage").

        L_t[i, j] = (1 - w^w[i] - w^w[j]) L_{t-1}[i, j] + w^w[i] p_{t-1}[j],   L_t[i, i] = 0

    Args:
        link: (b, N, N) L_{t-1}.
        precedence_prev: (b, N) p_{t-1}, the precedence before this write.
        write_weights: (b, N) w^w_t.
        off_diagonal: (N, N) 1 - I, when the caller keeps it across steps; built here otherwise.
    Returns:
        (b, N, N) L_t.
    """
    w_i, w_j = write_weights[:, :, None], write_weights[:, None, :]  # (b, N, 1), (b, 1, N)
    new = (1 - w_i - w_j) * link + w_i * precedence_prev[:, None, :]  # (b, N, N)
    if off_diagonal is None:
        off_diagonal = 1 - torch.eye(link.shape[-1], dtype=link.dtype, device=link.device)  # (N, N)
    return new * off_diagonal


def directional_weights(link: Tensor, read_weights: Tensor) -> tuple[Tensor, Tensor]:
    """Forward and backward weightings ("Temporal memory linkage"): f = L w^r, b = L^T w^r.

    Args:
        link: (b, N, N) L_t.
        read_weights: (b, R, N) w^r_{t-1}.
    Returns:
        forward (b, R, N): the slots written just after the ones read;
        backward (b, R, N): the slots written just before.
    """
    forward = read_weights @ link.transpose(1, 2)  # (b, R, N): f[r, i] = sum_j L[i, j] w[r, j]
    backward = read_weights @ link  # (b, R, N): b[r, j] = sum_i L[i, j] w[r, i]
    return forward, backward


def read_weighting(modes: Tensor, backward: Tensor, content: Tensor, forward: Tensor) -> Tensor:
    """Read weighting ("Read weighting"): w^r = pi[1] b + pi[2] c^r + pi[3] f.

    Args:
        modes: (b, R, 3) read modes pi (backward, content, forward), each row summing to 1.
        backward: (b, R, N) b_t.
        content: (b, R, N) c^r_t.
        forward: (b, R, N) f_t.
    Returns:
        (b, R, N) w^r_t.
    """
    return modes[..., 0:1] * backward + modes[..., 1:2] * content + modes[..., 2:3] * forward


class Interface(NamedTuple):
    """The interface vector xi_t split and squashed ("Interface parameters")."""

    read_keys: Tensor  # (b, R, W) k^r
    read_strengths: Tensor  # (b, R) beta^r >= 1
    write_key: Tensor  # (b, 1, W) k^w
    write_strength: Tensor  # (b, 1) beta^w >= 1
    erase: Tensor  # (b, W) e in [0, 1]
    add: Tensor  # (b, W) v, the write vector
    free_gates: Tensor  # (b, R) f in [0, 1]
    alloc_gate: Tensor  # (b,) g^a in [0, 1]
    write_gate: Tensor  # (b,) g^w in [0, 1]
    modes: Tensor  # (b, R, 3) pi, softmax over (backward, content, forward)


def _oneplus(x: Tensor) -> Tensor:
    return 1 + F.softplus(x)


def interface_sizes(num_reads: int, word_size: int) -> list[int]:
    """Widths of the interface vector's fields, in the order of `Interface`."""
    R, W = num_reads, word_size
    return [R * W, R, W, 1, W, W, R, 1, 1, 3 * R]


def interface_fields(xi: Tensor, num_reads: int, word_size: int) -> Interface:
    """Split the interface vector and squash each field ("Interface parameters").

    Args:
        xi: (b, sum(interface_sizes)) W_xi h_t + b_xi.
        num_reads: R.
        word_size: W.
    Returns:
        the Interface, with the shapes listed on its fields.
    """
    b, R, W = xi.shape[0], num_reads, word_size
    rk, rs, wk, ws, e, v, f, ga, gw, pi = xi.split(interface_sizes(R, W), dim=-1)
    return Interface(
        read_keys=rk.view(b, R, W),  # (b, R, W)
        read_strengths=_oneplus(rs),
        write_key=wk.view(b, 1, W),  # (b, 1, W)
        write_strength=_oneplus(ws),
        erase=torch.sigmoid(e),
        add=v,
        free_gates=torch.sigmoid(f),
        alloc_gate=torch.sigmoid(ga).squeeze(-1),  # (b,)
        write_gate=torch.sigmoid(gw).squeeze(-1),  # (b,)
        modes=torch.softmax(pi.view(b, R, 3), dim=-1),  # (b, R, 3): over modes, not slots
    )
