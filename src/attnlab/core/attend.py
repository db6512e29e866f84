"""attend: the one weighted sum every attention mechanism in attnlab goes through.

    weights = softmax(score(q, k) + bias, masked where mask is False)    over j
    out     = weights @ v

A score (see scores.py) is the only thing that differs between scaled dot-product, Luong,
Bahdanau, content addressing and memory hops. When the score is a dot product and no weights are
wanted, the call goes to F.scaled_dot_product_attention (the fused kernel); otherwise it runs the
eager path below. Both give the same numbers; `why_not_fast_path` says which one a call takes.
Inside torch.vmap (several seeds as one model) the eager path runs: on a CPU the fused kernel has
no batching rule and would loop over the vmapped dimension.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor

from attnlab.core.fast import under_vmap
from attnlab.core.masks import causal_mask, combine_masks
from attnlab.core.scores import SAME_DIM_SCORES, SCORES, ScoreFn

_FAST_SCORES = ("scaled_dot", "dot")


class AttendOutput(NamedTuple):
    out: Tensor  # (b, h, i, f)
    weights: Tensor | None  # (b, h, i, j) when asked for, else None


def attend(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    *,
    score: str | ScoreFn = "scaled_dot",
    score_args: Mapping[str, Any] | None = None,
    mask: Tensor | None = None,
    bias: Tensor | None = None,
    causal: bool = False,
    dropout: float = 0.0,
    need_weights: bool = False,
) -> AttendOutput:
    """Attend from queries to keys and return the weighted sum of values.

    Args:
        q: (b, h, i, e) queries.
        k: (b, hk, j, e_k) keys; hk divides h (grouped / multi-query heads share a key head).
        v: (b, hk, j, f) values.
        score: a name in `SCORES` or a callable `(q, k, **score_args) -> (b, h, i, j)`.
        score_args: keyword arguments of the score (`scale`, `weight`, `v`, `strength`, ...).
        mask: bool, broadcastable to (b, h, i, j); True = may attend. A row with no True gives
            zero output and zero weights, and zero gradients.
        bias: float, broadcastable to (b, h, i, j), added to the logits (ALiBi, relative bias).
        causal: also mask keys after each query, aligned so the last query sees the last key.
        dropout: dropout probability on the weights (pass 0 in evaluation).
        need_weights: return the (b, h, i, j) weights; forces the eager path.
    Returns:
        AttendOutput(out (b, h, i, f), weights (b, h, i, j) or None).
    """
    name = score if isinstance(score, str) else None
    if name is not None and name not in SCORES:
        raise ValueError(f"attend: unknown score {score!r}; choose one of {sorted(SCORES)}")
    _check_inputs(q, k, v, mask, bias, name)
    if bias is not None and bias.dtype != q.dtype:
        bias = bias.to(q.dtype)  # positional tables are float32; follow the queries' precision
    args = {} if score_args is None else dict(score_args)
    i, j = q.shape[-2], k.shape[-2]
    if _fast_reason(name, args, need_weights) is None and not under_vmap(q):
        return AttendOutput(_fast(q, k, v, name, args, mask, bias, causal, dropout, i, j), None)
    if causal:
        mask = combine_masks(mask, causal_mask(i, j, device=q.device))
    return _eager(q, k, v, SCORES[score] if isinstance(score, str) else score, args, mask, bias, dropout, need_weights)


def why_not_fast_path(
    *,
    score: str | ScoreFn = "scaled_dot",
    score_args: Mapping[str, Any] | None = None,
    need_weights: bool = False,
) -> str | None:
    """Why `attend` with these arguments runs the eager path instead of the fused kernel; None if it does not."""
    name = score if isinstance(score, str) else None
    return _fast_reason(name, {} if score_args is None else dict(score_args), need_weights)


def _fast_reason(name: str | None, args: dict[str, Any], need_weights: bool) -> str | None:
    if need_weights:
        return "weights were asked for (need_weights=True); the fused kernel does not return them"
    if name is None:
        return "the score is a custom callable; only 'scaled_dot' and 'dot' have a fused kernel"
    if name not in _FAST_SCORES:
        return f"score {name!r} has no fused kernel; only 'scaled_dot' and 'dot' do"
    extra = set(args) - ({"scale"} if name == "scaled_dot" else set())
    if extra:
        return f"score {name!r} got arguments the fused kernel does not take: {sorted(extra)}"
    return None


def _fast(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    name: str | None,
    args: dict[str, Any],
    mask: Tensor | None,
    bias: Tensor | None,
    causal: bool,
    dropout: float,
    i: int,
    j: int,
) -> Tensor:
    scale = 1.0 if name == "dot" else args.get("scale")
    is_causal = False
    if causal:
        if mask is None and bias is None and i == j:
            is_causal = True  # SDPA's own causal flag is top-left aligned, which matches only when i == j
        else:
            mask = combine_masks(mask, causal_mask(i, j, device=q.device))
    attn_mask = mask
    if bias is not None:
        attn_mask = bias if mask is None else torch.where(mask, bias, float("-inf"))
    return F.scaled_dot_product_attention(
        q,
        k,
        v,
        attn_mask=attn_mask,
        dropout_p=dropout,
        is_causal=is_causal,
        scale=scale,
        enable_gqa=q.shape[1] != k.shape[1],
    )  # (b, h, i, f)


def _eager(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    score_fn: ScoreFn,
    args: dict[str, Any],
    mask: Tensor | None,
    bias: Tensor | None,
    dropout: float,
    need_weights: bool,
) -> AttendOutput:
    h, hk = q.shape[1], k.shape[1]
    if hk != h:
        k = k.repeat_interleave(h // hk, dim=1)  # (b, h, j, e_k)
        v = v.repeat_interleave(h // hk, dim=1)  # (b, h, j, f)
    logits = score_fn(q, k, **args)  # (b, h, i, j)
    if bias is not None:
        logits = logits + bias
    blocked = None if mask is None else ~mask
    if blocked is not None:
        # A finite fill keeps fully masked rows finite (uniform); zeroing the weights afterwards makes
        # them exactly zero, and the gradient through the fill is zero too.
        logits = logits.masked_fill(blocked, torch.finfo(logits.dtype).min)
    weights = torch.softmax(logits, dim=-1)  # (b, h, i, j)
    if blocked is not None:
        weights = weights.masked_fill(blocked, 0.0)
    used = F.dropout(weights, p=dropout) if dropout > 0 else weights
    if q.shape[-2] == 1 and under_vmap(q):  # one query: a broadcast product, not K * b rank-1 matmuls
        out = (used.transpose(-2, -1) * v).sum(-2, keepdim=True)  # (b, h, 1, f)
    else:
        out = used @ v  # (b, h, i, f)
    return AttendOutput(out, weights if need_weights else None)


def _shape(t: Tensor) -> tuple[int, ...]:
    return tuple(t.shape)


def _check_inputs(q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None, bias: Tensor | None, name: str | None) -> None:
    for arg, t, letters in (("q", q, "(b, h, i, e)"), ("k", k, "(b, hk, j, e)"), ("v", v, "(b, hk, j, f)")):
        if t.dim() != 4:
            raise ValueError(f"attend: {arg} must be 4-D {letters}; got shape {_shape(t)}")
    if k.dtype != q.dtype or v.dtype != q.dtype:
        raise ValueError(f"attend: q, k and v must share a dtype; got q {q.dtype}, k {k.dtype}, v {v.dtype}")
    b, h, i, e = q.shape
    if k.shape[0] != b:
        raise ValueError(f"attend: k must have q's batch size {b}; expected ({b}, hk, j, e), got {_shape(k)}")
    if v.shape[:3] != k.shape[:3]:
        raise ValueError(
            f"attend: v must match k in batch, heads and length; expected {(*_shape(k)[:3], 'f')}, got {_shape(v)}"
        )
    if h % k.shape[1]:
        raise ValueError(
            f"attend: k has {k.shape[1]} heads, which do not divide q's {h}; expected (b, hk, j, e) with {h} % hk == 0, "
            f"got {_shape(k)}"
        )
    if name in SAME_DIM_SCORES and k.shape[-1] != e:
        raise ValueError(
            f"attend: k must have q's head dim {e} for score {name!r}; expected {(*_shape(k)[:3], e)}, got {_shape(k)}"
        )
    target = (b, h, i, k.shape[2])
    if mask is not None:
        if mask.dtype != torch.bool:
            raise ValueError(
                f"attend: mask must be a bool tensor (True = may attend); got {mask.dtype} of shape "
                f"{_shape(mask)}; convert other masks with attnlab.core.from_torch_mask"
            )
        _check_broadcast("mask", mask, target)
    if bias is not None:
        if not bias.dtype.is_floating_point:
            raise ValueError(f"attend: bias must be a float tensor; got {bias.dtype}")
        _check_broadcast("bias", bias, target)


def _check_broadcast(arg: str, t: Tensor, target: tuple[int, int, int, int]) -> None:
    shape = _shape(t)
    ok = len(shape) <= 4 and all(s in (1, n) for s, n in zip(shape[::-1], target[::-1]))
    if not ok:
        raise ValueError(f"attend: {arg} must broadcast to (b, h, i, j) = {target}; got shape {shape}")
