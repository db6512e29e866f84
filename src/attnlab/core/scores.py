"""Score functions: how much each query matches each key, before the softmax.

Every function takes q (b, h, i, e) and k (b, h, j, e_k) plus its own parameters as keyword
arguments, and returns logits (b, h, i, j). `attend` turns logits into weights, once, for all of them.

    scaled_dot  q . k / sqrt(e)                  Vaswani et al. 2017, eq. 1
    dot         q . k                            Luong et al. 2015, "dot"; memory hops (MemN2N)
    general     q^T W k                          Luong et al. 2015, "general"
    additive    v^T tanh(W q + U k)              Bahdanau et al. 2015, eq. 6 (a(s, h))
    cosine      beta * cos(q, k)                 Graves et al. 2014, eq. 5-6 (content addressing)
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

ScoreFn = Callable[..., Tensor]


def scaled_dot(q: Tensor, k: Tensor, *, scale: float | None = None) -> Tensor:
    """Scaled dot product. q (b, h, i, e), k (b, h, j, e) -> (b, h, i, j); scale defaults to e^-1/2."""
    if scale is None:
        scale = 1.0 / math.sqrt(q.shape[-1])
    return dot(q, k) * scale  # (b, h, i, j)


def dot(q: Tensor, k: Tensor) -> Tensor:
    """Plain dot product. q (b, h, i, e), k (b, h, j, e) -> (b, h, i, j).

    One query (i = 1) is a broadcast product: the same numbers, and under torch.vmap (many seeds
    stacked) far cheaper than a batch of rank-1 matmuls, forward and backward.
    """
    if q.shape[-2] == 1:
        return (q * k).sum(-1).unsqueeze(-2)  # (b, h, 1, j)
    return q @ k.transpose(-2, -1)  # (b, h, i, j)


def general(q: Tensor, k: Tensor, *, weight: Tensor) -> Tensor:
    """Luong's bilinear score q^T W k.

    Args:
        q: (b, h, i, e) queries.
        k: (b, h, j, e_k) keys.
        weight: (e, e_k) the matrix W_a.
    Returns:
        (b, h, i, j) logits.
    """
    if weight.dim() != 2 or weight.shape[0] != q.shape[-1] or weight.shape[1] != k.shape[-1]:
        raise ValueError(
            f"general score: weight must have shape (e, e_k) = ({q.shape[-1]}, {k.shape[-1]}); "
            f"got {tuple(weight.shape)}"
        )
    return (q @ weight) @ k.transpose(-2, -1)  # (b, h, i, e_k) @ (b, h, e_k, j) -> (b, h, i, j)


def additive(
    q: Tensor,
    k: Tensor,
    *,
    v: Tensor,
    w_q: Tensor | None = None,
    w_k: Tensor | None = None,
) -> Tensor:
    """Bahdanau's additive score v^T tanh(W q + U k).

    Recurrent decoders project the keys once per sequence and pass them already projected: leave
    `w_k` (or `w_q`) out and the score uses k (or q) as it is.

    Args:
        q: (b, h, i, e) queries, or (b, h, i, a) when `w_q` is None.
        k: (b, h, j, e_k) keys, or (b, h, j, a) when `w_k` is None.
        v: (a,) the vector v_a.
        w_q: (a, e) the matrix W_a, optional.
        w_k: (a, e_k) the matrix U_a, optional.
    Returns:
        (b, h, i, j) logits.
    """
    wq = q if w_q is None else q @ w_q.transpose(0, 1)  # (b, h, i, a)
    uk = k if w_k is None else k @ w_k.transpose(0, 1)  # (b, h, j, a)
    if wq.shape[-1] != uk.shape[-1] or v.shape != (wq.shape[-1],):
        raise ValueError(
            f"additive score: projected q, k and v must share the attention dim; got W q {tuple(wq.shape)}, "
            f"U k {tuple(uk.shape)}, v {tuple(v.shape)}"
        )
    hidden = torch.tanh(wq.unsqueeze(-2) + uk.unsqueeze(-3))  # (b, h, i, j, a)
    return hidden @ v  # (b, h, i, j)


def cosine(q: Tensor, k: Tensor, *, strength: Tensor | float = 1.0, eps: float = 1e-6) -> Tensor:
    """Content addressing: key strength beta times the cosine similarity of q and each k.

    The norms are sqrt(|x|^2 + eps^2), smooth everywhere, so zero vectors (an empty memory) give
    zero similarity and finite gradients instead of 0/0.

    Args:
        q: (b, h, i, e) lookup keys.
        k: (b, h, j, e) memory rows.
        strength: beta >= 0, a float or a tensor broadcastable to (b, h, i, 1).
        eps: smoothing of the norms.
    Returns:
        (b, h, i, j) logits.
    """
    qn = q * torch.rsqrt(q.pow(2).sum(-1, keepdim=True) + eps * eps)  # (b, h, i, e)
    kn = k * torch.rsqrt(k.pow(2).sum(-1, keepdim=True) + eps * eps)  # (b, h, j, e)
    return strength * (qn @ kn.transpose(-2, -1))  # (b, h, i, j)


SCORES: dict[str, ScoreFn] = {
    "scaled_dot": scaled_dot,
    "dot": dot,
    "general": general,
    "additive": additive,
    "cosine": cosine,
}

# Scores that compare q and k in the same space, so their last dims must agree.
SAME_DIM_SCORES = frozenset({"scaled_dot", "dot", "cosine"})
