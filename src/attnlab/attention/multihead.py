"""Multi-head query/key/value attention (Vaswani et al. 2017, section 3.2.2).

    head_n = attend(Q W^Q_n, K W^K_n, V W^V_n)        n = 1..h        (eq. 4, via core.attend)
    MultiHead(Q, K, V) = Concat(head_1..head_h) W^O

Grouped-query and multi-query attention (Ainslie et al. 2023; Shazeer 2019) share each key/value
head between h / hk query heads: `num_kv_heads` = hk (h for plain multi-head, 1 for multi-query).

Batch first everywhere: query (b, i, d), key (b, j, kdim), value (b, j, vdim).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from attnlab.attention.positions import Positions
from attnlab.core import Traced, attend, combine_masks, from_torch_mask, key_mask


@dataclass
class KVCache:
    """Projected keys and values of the positions seen so far, for one attention layer.

    Self-attention appends the new positions at each decoding step. A cross-attention cache is
    `static`: the encoder's keys and values are projected on the first call and reused after.
    """

    k: Tensor | None = None  # (b, hk, j, e)
    v: Tensor | None = None  # (b, hk, j, e)
    static: bool = False

    @property
    def length(self) -> int:
        return 0 if self.k is None else self.k.shape[2]

    def append(self, k: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
        """Add k, v (b, hk, t, e) after the cached positions and return all of them (b, hk, j + t, e)."""
        if self.k is None or self.v is None:
            self.k, self.v = k, v
        else:
            self.k = torch.cat([self.k, k], dim=2)  # (b, hk, j + t, e)
            self.v = torch.cat([self.v, v], dim=2)  # (b, hk, j + t, e)
        return self.k, self.v

    def select(self, index: Tensor) -> KVCache:
        """A new cache holding the rows `index` (b',) of this one: beams expanded or reordered."""
        if self.k is None or self.v is None:
            return KVCache(static=self.static)
        return KVCache(self.k.index_select(0, index), self.v.index_select(0, index), self.static)  # (b', hk, j, e)


@dataclass
class StaticKVCache:
    """Keys and values of one self-attention layer in buffers allocated once for `capacity` positions.

    Each call writes its new positions in place after the `length` filled ones and attends over the
    filled prefix, so decoding allocates nothing per step and every step sees tensors of the same
    shapes (what a compiled step needs). Same interface as a self-attention KVCache. A sequence that
    outgrows the buffers reallocates them at twice the size.
    """

    k: Tensor  # (b, hk, n + 1, e), n = capacity
    v: Tensor  # (b, hk, n + 1, e)
    length: int = 0  # positions filled, 0 .. n

    @classmethod
    def empty(cls, batch_size: int, num_kv_heads: int, capacity: int, head_dim: int, *, like: Tensor) -> StaticKVCache:
        """Zeroed buffers for `capacity` positions, with the dtype and device of `like`.

        One more position than asked for is allocated and never filled: the filled prefix is then
        never the whole buffer, whose contiguous layout a compiled step would see as a new case
        and compile again for.
        """
        shape = (batch_size, num_kv_heads, capacity + 1, head_dim)
        return cls(like.new_zeros(shape), like.new_zeros(shape))  # (b, hk, n + 1, e) each

    @property
    def capacity(self) -> int:
        return self.k.shape[2] - 1

    def append(self, k: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
        """Write k, v (b, hk, t, e) at positions length .. length + t - 1; return the filled (b, hk, j, e)."""
        start, t = self.length, k.shape[2]
        if start + t > self.capacity:  # more positions than it was allocated for: grow, doubling
            extra = max(start + t, 2 * self.capacity) - self.capacity
            self.k = F.pad(self.k, (0, 0, 0, extra))  # (b, hk, n' + 1, e)
            self.v = F.pad(self.v, (0, 0, 0, extra))  # (b, hk, n' + 1, e)
        self.k[:, :, start : start + t] = k
        self.v[:, :, start : start + t] = v
        self.length = start + t
        return self.k[:, :, : self.length], self.v[:, :, : self.length]  # (b, hk, j, e) each

    def select(self, index: Tensor) -> StaticKVCache:
        """A new cache holding the rows `index` (b',) of this one: beams expanded or reordered."""
        k, v = self.k.index_select(0, index), self.v.index_select(0, index)  # (b', hk, n + 1, e) each
        return StaticKVCache(k, v, self.length)


class MultiHeadAttention(Traced, nn.Module):
    """Multi-head attention with separate q/k/v projections, batch first.

    Args:
        embed_dim: d, the model dim (queries and output).
        num_heads: h, query heads; head_dim = d / h.
        num_kv_heads: hk, key/value heads (divides h); default h.
        bias: add biases to the projections.
        dropout: dropout on the attention weights while training.
        kdim, vdim: key and value input dims (cross-attention from another space); default d.
    """

    def __init__(
        self,
        embed_dim: int,
        num_heads: int,
        *,
        num_kv_heads: int | None = None,
        bias: bool = True,
        dropout: float = 0.0,
        kdim: int | None = None,
        vdim: int | None = None,
    ):
        super().__init__()
        num_kv_heads = num_heads if num_kv_heads is None else num_kv_heads
        if embed_dim % num_heads:
            raise ValueError(f"MultiHeadAttention: embed_dim {embed_dim} is not divisible by num_heads {num_heads}")
        if num_heads % num_kv_heads:
            raise ValueError(f"MultiHeadAttention: num_kv_heads {num_kv_heads} does not divide num_heads {num_heads}")
        self.embed_dim, self.num_heads, self.num_kv_heads = embed_dim, num_heads, num_kv_heads
        self.head_dim = embed_dim // num_heads
        self.kdim = embed_dim if kdim is None else kdim
        self.vdim = embed_dim if vdim is None else vdim
        self.dropout = dropout
        kv_dim = num_kv_heads * self.head_dim
        self.q_proj = nn.Linear(embed_dim, embed_dim, bias=bias)
        self.k_proj = nn.Linear(self.kdim, kv_dim, bias=bias)
        self.v_proj = nn.Linear(self.vdim, kv_dim, bias=bias)
        self.out_proj = nn.Linear(embed_dim, embed_dim, bias=bias)

    def forward(
        self,
        query: Tensor,
        key: Tensor | None = None,
        value: Tensor | None = None,
        *,
        mask: Tensor | None = None,
        bias: Tensor | None = None,
        causal: bool = False,
        positions: Positions | None = None,
        cache: KVCache | StaticKVCache | None = None,
    ) -> Tensor:
        """Attend from `query` to `key`/`value` (to `query` itself when key is None).

        Args:
            query: (b, i, d).
            key: (b, j, kdim), or None for self-attention.
            value: (b, j, vdim); defaults to key.
            mask: bool, broadcastable to (b, h, i, j); True = may attend (see attnlab.core.masks).
            bias: float (h, i, j) or broadcastable, added to the logits (ALiBi, T5 relative bias).
            causal: mask future keys (self-attention), aligned for decoding with a cache.
            positions: a positional scheme whose `rotate(x, offset)` is applied to queries and keys
                of self-attention (rotary embeddings); None for none.
            cache: a KVCache to extend (self-attention) or to fill once and reuse (static,
                cross-attention), or a StaticKVCache written in place (self-attention). The rotary
                offset is the number of positions already cached.
        Returns:
            (b, i, d).
        """
        self_attn = key is None
        key = query if key is None else key
        value = key if value is None else value
        self._check(query, key, value)
        b, i, _ = query.shape
        q = self.q_proj(query).view(b, i, self.num_heads, self.head_dim).transpose(1, 2)  # (b, h, i, e)
        memory = cache if isinstance(cache, KVCache) and cache.static else None  # cross keys, projected once
        offset = 0 if cache is None or memory is not None else cache.length
        if memory is not None and memory.k is not None and memory.v is not None:
            k, v = memory.k, memory.v  # (b, hk, j, e)
        else:
            k = self._heads(self.k_proj(key))  # (b, hk, t, e)
            v = self._heads(self.v_proj(value))  # (b, hk, t, e)
            if positions is not None and self_attn:
                k = positions.rotate(k, offset)
            if cache is not None:
                k, v = cache.append(k, v)  # (b, hk, j, e)
        if positions is not None and self_attn:
            q = positions.rotate(q, offset)
        need = self.tracing
        out, weights = attend(
            q,
            k,
            v,
            mask=mask,
            bias=bias,
            causal=causal,
            dropout=self.dropout if self.training else 0.0,
            need_weights=need,
        )  # (b, h, i, e)
        if weights is not None:  # asked for exactly when tracing
            self.record("self" if self_attn else "cross", weights)
        out = out.transpose(1, 2).reshape(b, i, self.embed_dim)  # (b, i, d)
        return self.out_proj(out)

    def memory_cache(self, key: Tensor, value: Tensor | None = None) -> KVCache:
        """The static cache of cross-attention to key (b, j, kdim) / value (b, j, vdim), projected once."""
        value = key if value is None else value
        return KVCache(self._heads(self.k_proj(key)), self._heads(self.v_proj(value)), static=True)  # (b, hk, j, e)

    def _heads(self, x: Tensor) -> Tensor:
        b, t, _ = x.shape
        return x.view(b, t, self.num_kv_heads, self.head_dim).transpose(1, 2)  # (b, hk, t, e)

    def _check(self, query: Tensor, key: Tensor, value: Tensor) -> None:
        for arg, t, dim, letter in (
            ("query", query, self.embed_dim, "(b, i, d)"),
            ("key", key, self.kdim, "(b, j, kdim)"),
            ("value", value, self.vdim, "(b, j, vdim)"),
        ):
            if t.dim() != 3 or t.shape[-1] != dim:
                raise ValueError(
                    f"MultiHeadAttention: {arg} must be {letter} with last dim {dim}; got shape {tuple(t.shape)}"
                )
        if key.shape[:2] != value.shape[:2] or key.shape[0] != query.shape[0]:
            raise ValueError(
                f"MultiHeadAttention: key and value must share batch and length with query's batch; got query "
                f"{tuple(query.shape)}, key {tuple(key.shape)}, value {tuple(value.shape)}"
            )

    @classmethod
    def from_torch(cls, m: nn.MultiheadAttention) -> MultiHeadAttention:
        """Copy an nn.MultiheadAttention's weights into a new MultiHeadAttention.

        The copy is batch first whatever `m.batch_first` was, and takes masks of attnlab's
        polarity: convert PyTorch masks with `attnlab.core.from_torch_mask`.
        """
        if m.bias_k is not None or m.add_zero_attn:
            raise ValueError("MultiHeadAttention.from_torch: add_bias_kv and add_zero_attn are not supported")
        has_bias = m.in_proj_bias is not None
        new = cls(m.embed_dim, m.num_heads, bias=has_bias, dropout=m.dropout, kdim=m.kdim, vdim=m.vdim)
        new = new.to(dtype=m.out_proj.weight.dtype, device=m.out_proj.weight.device)
        d = m.embed_dim
        with torch.no_grad():
            if m.in_proj_weight is not None:
                wq, wk, wv = m.in_proj_weight.split(d)  # each (d, d)
            else:
                wq, wk, wv = m.q_proj_weight, m.k_proj_weight, m.v_proj_weight
            for proj, w in ((new.q_proj, wq), (new.k_proj, wk), (new.v_proj, wv)):
                proj.weight.copy_(w)
            if has_bias:
                for proj, bb in zip((new.q_proj, new.k_proj, new.v_proj), m.in_proj_bias.split(d)):
                    proj.bias.copy_(bb)
            new.out_proj.weight.copy_(m.out_proj.weight)
            if has_bias:
                new.out_proj.bias.copy_(m.out_proj.bias)
        return new


def torch_masks_to_attend(attn_mask: Tensor | None, key_padding_mask: Tensor | None) -> Tensor | None:
    """nn.MultiheadAttention's (attn_mask (i, j), key_padding_mask (b, j)), True = masked, as one attend mask."""
    keep = from_torch_mask(key_padding_mask)  # (b, j)
    return combine_masks(from_torch_mask(attn_mask), None if keep is None else key_mask(keep))
