"""Addressing of NTM and DNC heads (Graves et al. 2014, "Neural Turing Machines", sec. 3.3;
Graves et al. 2016, "content-based addressing").

    w^c_i     = softmax over slots i of beta * K[k, M_i]      eq. 5-6  `content_weights`
    w^g       = g w^c + (1 - g) w_{t-1}                       eq. 7    `interpolate`
    w~_i      = sum_j w^g_j s(i - j)   (indices mod n)        eq. 8    `shift`
    w_i       = w~_i^gamma / sum_j w~_j^gamma                 eq. 9    `sharpen`

K is cosine similarity, beta >= 0 the key strength, g in [0, 1] the interpolation gate, s a
distribution over the 2s+1 shifts -s..s, gamma >= 1 the sharpening exponent. The cosine score and
the softmax of content addressing are the attention core's (`core.attend` with score "cosine"),
so content addressing is one more score function, not a second softmax. Location addressing
(eq. 7-9) is no softmax: it mixes, rotates and renormalises weightings that already sum to one.
"""

from __future__ import annotations

from torch import Tensor

from attnlab.core import attend


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


def sharpen(weights: Tensor, gamma: Tensor, eps: float = 1e-8) -> Tensor:
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
