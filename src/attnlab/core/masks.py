"""Boolean attention masks. True means "may attend" (the polarity of F.scaled_dot_product_attention).

Every mask broadcasts to (b, h, i, j). Builders return the smallest shape that broadcasts, so a
padding mask is (b, 1, 1, j) and a causal mask is (i, j). Convert masks of the opposite polarity
(nn.MultiheadAttention, nn.Transformer*) once, at the boundary, with `from_torch_mask`.
"""

from __future__ import annotations

import torch
from torch import Tensor


def padding_mask(lengths: Tensor, max_len: int | None = None) -> Tensor:
    """Keys at positions >= length are padding.

    Args:
        lengths: (b,) integer lengths.
        max_len: j, the padded length; defaults to max(lengths).
    Returns:
        (b, 1, 1, j) bool, True for real keys.
    """
    if lengths.dim() != 1 or lengths.dtype.is_floating_point or lengths.dtype == torch.bool:
        raise ValueError(
            f"padding_mask: lengths must be a 1-D integer tensor (b,); got {lengths.dtype} of shape "
            f"{tuple(lengths.shape)}"
        )
    j = int(lengths.max()) if max_len is None else max_len
    positions = torch.arange(j, device=lengths.device)  # (j,)
    return (positions < lengths[:, None])[:, None, None, :]  # (b, 1, 1, j)


def key_mask(keep: Tensor) -> Tensor:
    """Lift a per-key mask (b, j), True = real key, to (b, 1, 1, j)."""
    if keep.dim() != 2 or keep.dtype != torch.bool:
        raise ValueError(f"key_mask: keep must be a bool tensor (b, j); got {keep.dtype} {tuple(keep.shape)}")
    return keep[:, None, None, :]  # (b, 1, 1, j)


def causal_mask(
    i: int, j: int | None = None, *, offset: int | None = None, device: torch.device | str | None = None
) -> Tensor:
    """Query r (at absolute position offset + r) may attend key c when c <= offset + r.

    The default offset j - i aligns the last query with the last key: the shape of decoding with a
    key/value cache, where i new queries follow j - i cached positions. With i == j it is the usual
    lower-triangular mask.

    Returns:
        (i, j) bool.
    """
    j = i if j is None else j
    offset = j - i if offset is None else offset
    rows = torch.arange(i, device=device)[:, None] + offset  # (i, 1)
    cols = torch.arange(j, device=device)[None, :]  # (1, j)
    return cols <= rows  # (i, j)


def combine_masks(*masks: Tensor | None) -> Tensor | None:
    """Logical AND of the masks given; None where every one is None."""
    out = None
    for m in masks:
        if m is not None:
            out = m if out is None else out & m
    return out


def from_torch_mask(mask: Tensor | None) -> Tensor | None:
    """Convert a PyTorch module mask (nn.MultiheadAttention's polarity) to ours.

    A bool mask there means True = masked out; a float mask there is added to the logits and may
    only hold 0 (attend) and -inf (masked) to be expressed as a bool mask.
    """
    if mask is None:
        return None
    if mask.dtype == torch.bool:
        return ~mask
    if mask.dtype.is_floating_point:
        allowed = (mask == 0) | (mask == float("-inf"))
        if not bool(allowed.all()):
            raise ValueError(
                "from_torch_mask: a float mask with values other than 0 and -inf is a bias; pass it as "
                "attend(..., bias=mask) instead"
            )
        return mask == 0
    raise ValueError(f"from_torch_mask: mask must be bool or float; got {mask.dtype}")
