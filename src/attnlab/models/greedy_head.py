"""The greedy next token argmax_i z_i, z = x W^T, without reading the fp32 head W: an exact int8 screen.

Decoding one token is memory-bandwidth bound, and for a large vocabulary the head W (V, d) is the
largest matrix read per token (GPT-2's: 50257 x 384 fp32 = 77 MB). Greedy decoding needs only the
argmax of the logits, so an int8 copy of W (a quarter of the bytes, through fbgemm's dynamic int8
linear) screens the vocabulary, and only the few rows it cannot rule out are rescored in fp32:

    w~_i = s_i q_i,  s_i = max_k |w_ik| / 127,  q_i = round(w_i / s_i)     per-row symmetric int8
    e_i  = w_i - w~_i                                                      the row's rounding error
    z~_i = x~ . w~_i                                                       what the int8 kernel returns

The kernel quantises the activations x (b, d) itself, per tensor (one scale for the whole batch),
asymmetric uint8 on 0..127 (`reduce_range`: u8 x i8 pairs then never saturate AVX2's int16 sums):
x~ = s_x (q_x - zp), s_x = max((max(x, 0) - min(x, 0)) / 127, 6.1e-5) (fbgemm's smallest scale),
and every |x_k - x~_k| <= s_x / 2 (the zero point is rounded so that 0 and both ends of the range
lie within half a step of the grid). With z_i = x . w_i,

    z_i - z~_i = x . e_i + (x - x~) . w~_i
    |z_i - z~_i| <= |x|_2 |e_i|_2 + |x - x~|_2 |w~_i|_2 <= |x|_2 |e_i|_2 + r_x |w~_i|_2 = B_i,
    r_x = sqrt(d) s_x / 2                                                  (Cauchy-Schwarz twice)

Float rounding is covered by a slack: the kernel's int32 sums are exact and only their scaling to
fp32 rounds (a few ulp of |x~||w~_i|); the fp32 logits the argmax is defined on differ from the
real z_i by at most d u |x|_2 |w_i|_2 (u = 2^-24); so B_i grows by 4 (d + 2) u (|x|_2 + r_x)
(|w~_i|_2 + |e_i|_2), and the two norms by a relative 1e-4 (their own rounding).

Candidates: any i with z~_i + B_i < max_j (z~_j - B_j) has z_i < z_j for that j, so it is not the
argmax; the others (all of them, if the bound is loose) are rescored exactly as fp32 x . w_i and the
largest wins, the lowest index on ties like torch.argmax. For a batch, the union of the rows'
candidates is rescored for every row (an extra exact logit cannot change a row's argmax).

`ScreenedHead.of(W)` quantises and packs once; `kept_screened_head(owner, W)` keeps one per module,
remade only when W changes. CPU, fp32 and an fbgemm/x86 quantized engine only: elsewhere
`screen_available` says why not and callers keep the fp32 head.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

ENGINES = ("x86", "fbgemm")  # quantized engines whose dynamic linear is fbgemm's (the bound above)
SMALL_SCALE = 6.1e-5  # fbgemm raises smaller activation scales to this
ROUNDING = 2.0**-24  # u, the unit roundoff of fp32
MIN_SCREENED_WEIGHTS = 8_000_000  # V * d from which the screen beats fp32 x W^T (measured: even at ~6M)


def screen_available(weight: Tensor) -> str | None:
    """Why a screened head cannot serve `weight` (V, d) here, or None when it can."""
    if weight.device.type != "cpu" or weight.dtype != torch.float32:
        return f"needs a CPU float32 weight, got {weight.dtype} on {weight.device.type}"
    if torch.backends.quantized.engine not in ENGINES:
        return f"needs the quantized engine x86 or fbgemm, got {torch.backends.quantized.engine!r}"
    return None


def screen_pays(weight: Tensor) -> bool:
    """True when `weight` (V, d) is large enough that screening beats reading it in fp32."""
    return weight.numel() >= MIN_SCREENED_WEIGHTS and screen_available(weight) is None


@dataclass
class ScreenedHead:
    """W (V, d) twice: per-row int8, packed for fbgemm (the screen), and fp32 (the rescoring).

    `rescored` and `calls` count the candidate rows rescored and the argmax calls, for reports.
    """

    weight: Tensor  # W (V, d), fp32, the exact rows
    packed: Any  # the int8 copy w~ prepacked for torch.ops.quantized.linear_dynamic
    error_norm: Tensor  # |e_i|_2 (V,), rounded up
    quant_norm: Tensor  # |w~_i|_2 (V,), rounded up
    rescored: int = 0
    calls: int = 0

    def __post_init__(self) -> None:
        self._widest = (float(self.error_norm.max()), float(self.quant_norm.max()))  # for B*

    @classmethod
    def of(cls, weight: Tensor) -> ScreenedHead:
        """Quantise W (V, d) per row (symmetric int8) and pack it; W is kept by reference, not copied."""
        w = weight.detach()
        scale = (w.abs().amax(1) / 127).clamp_min(torch.finfo(torch.float32).tiny)  # s_i (V,)
        q = torch.round(w / scale[:, None]).clamp_(-127, 127)  # (V, d)
        approx = q * scale[:, None]  # w~ (V, d), each within u |w~_ik| of s_i q_ik
        # fp32 rounding: e's elements are off by at most u (|e_ik| + |w~_ik|), a norm of d terms by
        # d u relatively; both are absorbed by the 2u |w~_i| term and the relative growth.
        grow = 1 + 1e-4 + 4 * w.shape[1] * ROUNDING
        quant_norm = approx.norm(dim=1) * grow  # (V,)
        error_norm = ((w - approx).norm(dim=1) + 2 * ROUNDING * quant_norm) * grow  # (V,)
        zeros = torch.zeros(w.shape[0], dtype=torch.long)  # (V,)
        with warnings.catch_warnings():  # quantized tensors are deprecated as a user type; the op needs one
            warnings.simplefilter("ignore")
            qw = torch._make_per_channel_quantized_tensor(q.to(torch.int8), scale.double(), zeros, 0)
            packed = torch.ops.quantized.linear_prepack(qw, None)
        return cls(w, packed, error_norm, quant_norm)

    def screen(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """x (b, d) -> (z~ (b, V) the int8 logits, B (b, V) with |x W^T - z~| <= B elementwise)."""
        z = torch.ops.quantized.linear_dynamic(x, self.packed, True)  # (b, V)
        a, c = self._coefficients(x)  # (b, 1) each
        return z, a * self.error_norm + c * self.quant_norm  # (b, V) each

    def _coefficients(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """x (b, d) -> (a, c) (b, 1) each, with B = a |e_i|_2 + c |w~_i|_2 (slack included)."""
        d = x.shape[1]
        low, high = (float(v) for v in x.aminmax())  # the kernel's range is the whole batch's
        span = max(high, 0.0) - min(low, 0.0)
        r_x = math.sqrt(d) / 2 * (1 + 1e-4) * max(span / 127, SMALL_SCALE)  # >= |x - x~|_2
        x_norm = x.norm(dim=1, keepdim=True) * (1 + 1e-4)  # (b, 1)
        slack = 4 * (d + 2) * ROUNDING * (x_norm + r_x)  # (b, 1)
        return x_norm + slack, r_x + slack

    def candidates(self, x: Tensor) -> Tensor:
        """x (b, d) -> the ascending indices (k,) of the rows that may hold some row's argmax.

        Two passes keep the work over all V rows to a max and a comparison: with the largest
        bound B* = a max|e_i| + c max|w~_i|, every i with z~_i + B_i >= max_j (z~_j - B_j) has
        z~_i >= max z~ - 2 B* (and so has the j attaining that max), so the exact test runs on
        those few only.
        """
        z = torch.ops.quantized.linear_dynamic(x, self.packed, True)  # (b, V)
        a, c = self._coefficients(x)  # (b, 1) each
        widest = a * self._widest[0] + c * self._widest[1]  # (b, 1)
        near = z >= z.amax(1, keepdim=True) - 2 * widest  # (b, V)
        index = (near[0] if x.shape[0] == 1 else near.any(0)).nonzero().squeeze(1)  # (k0,)
        zk = z[:, index]  # (b, k0)
        bound = a * self.error_norm[index] + c * self.quant_norm[index]  # (b, k0)
        floor = (zk - bound).amax(1, keepdim=True)  # (b, 1) the largest guaranteed logit
        return index[(zk + bound >= floor).any(0)]  # (k,)

    def argmax(self, x: Tensor) -> Tensor:
        """x (b, d) -> argmax_i x . w_i (b,), as torch.argmax of the fp32 logits x W^T."""
        index = self.candidates(x)  # (k,)
        self.calls += 1
        self.rescored += index.numel()
        if index.numel() == 0:  # only a NaN in x empties the set: let fp32 say what argmax says
            return F.linear(x, self.weight).argmax(-1)  # (b,)
        logits = F.linear(x, self.weight.index_select(0, index))  # (b, k)
        return index[logits.argmax(-1)]  # (b,)


def kept_screened_head(owner: Any, weight: Tensor) -> ScreenedHead:
    """The ScreenedHead of `weight` (V, d) kept on `owner`, remade only when the weight changes."""
    key = (weight.data_ptr(), weight._version, weight.shape, torch.backends.quantized.engine)
    kept = owner.__dict__.get("_screened_head")
    if kept is None or kept[0] != key:
        kept = (key, ScreenedHead.of(weight))
        owner.__dict__["_screened_head"] = kept
    return kept[1]
