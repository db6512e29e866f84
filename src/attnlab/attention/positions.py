"""Positional schemes, chosen by name: where a token is, told to attention in one of three ways.

A scheme acts through up to three hooks; each is the identity (or None) unless the scheme uses it:

    embed(x)       add a vector per absolute position to the token embeddings     (b, t, d)
    rotate(x)      rotate queries and keys by their absolute position              (b, h, t, e)
    bias(i, j)     a per-head bias on the attention logits from relative position  (h, i, j)

The bias goes to `attnlab.core.attend(..., bias=...)`; rotated q and k go in as q and k.

    "none"        no position information (a bag of tokens)
    "sinusoidal"  Vaswani et al. 2017, "Attention Is All You Need", §3.5:
                      PE(pos, 2k)   = sin(pos / 10000^(2k/d))        -> SinusoidalPositions.table[pos, 2k]
                      PE(pos, 2k+1) = cos(pos / 10000^(2k/d))        -> SinusoidalPositions.table[pos, 2k+1]
    "learned"     a trained vector per absolute position (Gehring et al. 2017; GPT, BERT)
                                                                     -> LearnedPositions.table.weight[pos]
    "rope"        Su et al. 2021, "RoFormer", §3.2-3.4: rotate each feature pair by
                      theta_k = base^(-2k/e), angle pos * theta_k    -> RotaryPositions.cos / .sin[pos, k]
                  so that <R_m q, R_n k> depends on q, k and m - n only (eq. 16).
    "alibi"       Press et al. 2022, "Train Short, Test Long", §3: logits += -m_h * |key_pos - query_pos|
                  with a fixed geometric slope m_h per head          -> AlibiPositions.slopes[h]
    "t5"          Raffel et al. 2020, "Exploring the Limits of Transfer Learning" (T5), §2.1: a learned
                  scalar per (relative-position bucket, head)        -> T5Positions.table.weight[bucket, h]

Positions count from 0. `offset` is the absolute position of the first token given, so decoding
with a key/value cache passes the number of tokens already cached.
"""

from __future__ import annotations

import inspect
import math

import torch
from torch import Tensor, nn


class Positions(nn.Module):
    """A positional scheme. Each hook is the identity / None unless the scheme overrides it.

    Every scheme takes the same three keyword arguments (plus its own), so `build_positions` can
    construct any of them by name.

    Args:
        embed_dim: d, the model dim.
        num_heads: h, attention heads.
        max_len: longest sequence the scheme prepares for.
    """

    def __init__(self, *, embed_dim: int, num_heads: int, max_len: int = 2048):
        super().__init__()
        for arg, value in (("embed_dim", embed_dim), ("num_heads", num_heads), ("max_len", max_len)):
            if value < 1:
                raise ValueError(f"{type(self).__name__}: {arg} must be >= 1; got {value}")
        self.embed_dim = embed_dim
        self.num_heads = num_heads
        self.max_len = max_len

    def embed(self, x: Tensor, offset: int = 0) -> Tensor:
        """Add position information to token embeddings.

        Args:
            x: (b, t, d) embeddings of the tokens at positions offset .. offset + t - 1.
            offset: absolute position of the first token.
        Returns:
            (b, t, d).
        """
        return x

    def rotate(self, x: Tensor, offset: int = 0) -> Tensor:
        """Rotate queries or keys by their position.

        Args:
            x: (b, h, t, e) queries or keys at positions offset .. offset + t - 1.
            offset: absolute position of the first one.
        Returns:
            (b, h, t, e).
        """
        return x

    def bias(self, i: int, j: int, offset: int | None = None) -> Tensor | None:
        """A bias on the attention logits, from the relative position of each query and key.

        Args:
            i: number of queries, at absolute positions offset .. offset + i - 1.
            j: number of keys, at positions 0 .. j - 1.
            offset: position of the first query; default j - i aligns the last query with the last
                key (decoding with a key/value cache).
        Returns:
            (h, i, j) float, or None when the scheme adds no bias.
        """
        return None

    def extra_repr(self) -> str:
        return f"embed_dim={self.embed_dim}, num_heads={self.num_heads}, max_len={self.max_len}"


def _check_embed_input(scheme: Positions, x: Tensor, offset: int) -> None:
    name = type(scheme).__name__
    if x.dim() != 3 or x.shape[-1] != scheme.embed_dim:
        raise ValueError(f"{name}.embed: x must be (b, t, d={scheme.embed_dim}); got shape {tuple(x.shape)}")
    if offset < 0 or offset + x.shape[1] > scheme.max_len:
        raise ValueError(
            f"{name}.embed: positions {offset}..{offset + x.shape[1] - 1} are outside 0..{scheme.max_len - 1}; "
            f"build the scheme with a larger max_len (now max_len={scheme.max_len})"
        )


def _relative_positions(i: int, j: int, offset: int | None, device: torch.device) -> Tensor:
    """key_pos - query_pos for queries at offset..offset+i-1 (default offset j - i) and keys at 0..j-1."""
    offset = j - i if offset is None else offset
    query_pos = torch.arange(offset, offset + i, device=device)  # (i,)
    key_pos = torch.arange(j, device=device)  # (j,)
    return key_pos[None, :] - query_pos[:, None]  # (i, j)


class SinusoidalPositions(Positions):
    """Fixed sinusoids added to the embeddings (Vaswani et al. 2017, §3.5).

    Feature 2k holds sin(pos / 10000^(2k/d)) and feature 2k+1 the cos of the same angle (an odd d
    ends with a sin). The table is a non-persistent buffer: it is rebuilt, not saved.
    """

    table: Tensor  # (max_len, d) buffer

    def __init__(self, *, embed_dim: int, num_heads: int, max_len: int = 2048, base: float = 10000.0):
        super().__init__(embed_dim=embed_dim, num_heads=num_heads, max_len=max_len)
        pos = torch.arange(max_len, dtype=torch.float64)[:, None]  # (max_len, 1)
        feature = torch.arange(embed_dim)  # (d,)
        pair = (feature - feature % 2).to(torch.float64)  # (d,) the 2k shared by features 2k and 2k+1
        angle = pos / base ** (pair / embed_dim)  # (max_len, d)
        table = torch.where(feature % 2 == 0, torch.sin(angle), torch.cos(angle))  # (max_len, d)
        self.register_buffer("table", table.float(), persistent=False)

    def embed(self, x: Tensor, offset: int = 0) -> Tensor:
        _check_embed_input(self, x, offset)
        return x + self.table[offset : offset + x.shape[1]].to(x.dtype)  # (b, t, d)


class LearnedPositions(Positions):
    """A trained vector per absolute position, added to the embeddings.

    Initialised from N(0, 0.02^2), the scale of GPT-2's, so it starts small next to the tokens.
    """

    def __init__(self, *, embed_dim: int, num_heads: int, max_len: int = 2048, init_std: float = 0.02):
        super().__init__(embed_dim=embed_dim, num_heads=num_heads, max_len=max_len)
        self.table = nn.Embedding(max_len, embed_dim)
        nn.init.normal_(self.table.weight, std=init_std)

    def embed(self, x: Tensor, offset: int = 0) -> Tensor:
        _check_embed_input(self, x, offset)
        return x + self.table.weight[offset : offset + x.shape[1]].to(x.dtype)  # (b, t, d)


class RotaryPositions(Positions):
    """Rotary position embedding (Su et al. 2021, RoFormer).

    Layout: half-split ("rotate_half"). Feature k of the first half and feature k + e/2 of the
    second half form the pair rotated by angle pos * theta_k, theta_k = base^(-2k/e), k < e/2:

        x'[k]       = x[k] cos - x[k + e/2] sin
        x'[k + e/2] = x[k + e/2] cos + x[k] sin

    This is the paper's rotation up to a fixed permutation of features (the paper pairs features
    2k, 2k+1), so dot products, and thus attention, are the same; weights trained with the
    interleaved layout need their q/k projections permuted first.

    cos/sin are cached for max_len positions and the cache grows on demand, so longer sequences
    work (without any length-generalisation guarantee).

    Args:
        head_dim: e, even; defaults to embed_dim // num_heads.
        base: the 10000 in theta_k.
    """

    cos: Tensor  # (max_len, e/2) buffer
    sin: Tensor  # (max_len, e/2) buffer

    def __init__(
        self,
        *,
        embed_dim: int,
        num_heads: int,
        max_len: int = 2048,
        head_dim: int | None = None,
        base: float = 10000.0,
    ):
        super().__init__(embed_dim=embed_dim, num_heads=num_heads, max_len=max_len)
        head_dim = embed_dim // num_heads if head_dim is None else head_dim
        if head_dim < 2 or head_dim % 2:
            raise ValueError(f"RotaryPositions: head_dim must be even and >= 2; got head_dim={head_dim}")
        self.head_dim = head_dim
        self.base = base
        cos, sin = self._table(max_len, torch.float32, None)
        self.register_buffer("cos", cos, persistent=False)  # (max_len, e/2)
        self.register_buffer("sin", sin, persistent=False)  # (max_len, e/2)

    def _table(self, length: int, dtype: torch.dtype, device: torch.device | None) -> tuple[Tensor, Tensor]:
        work = torch.float64 if dtype == torch.float64 else torch.float32  # never build it in half precision
        k = torch.arange(0, self.head_dim, 2, dtype=work, device=device)  # (e/2,) the 2k
        theta = self.base ** (-k / self.head_dim)  # (e/2,)
        angle = torch.arange(length, dtype=work, device=device)[:, None] * theta  # (length, e/2)
        return angle.cos().to(dtype), angle.sin().to(dtype)

    def _ensure(self, length: int) -> None:
        if length > self.cos.shape[0]:
            grown = max(length, 2 * self.cos.shape[0])
            self.cos, self.sin = self._table(grown, self.cos.dtype, self.cos.device)  # (grown, e/2)

    def rotate(self, x: Tensor, offset: int = 0) -> Tensor:
        if x.dim() != 4 or x.shape[-1] != self.head_dim:
            raise ValueError(
                f"RotaryPositions.rotate: x must be (b, h, t, e={self.head_dim}); got shape {tuple(x.shape)}"
            )
        if offset < 0:
            raise ValueError(f"RotaryPositions.rotate: offset must be >= 0; got {offset}")
        t = x.shape[-2]
        self._ensure(offset + t)
        cos = self.cos[offset : offset + t].to(x.dtype)  # (t, e/2)
        sin = self.sin[offset : offset + t].to(x.dtype)  # (t, e/2)
        first, second = x.chunk(2, dim=-1)  # (b, h, t, e/2) each
        return torch.cat((first * cos - second * sin, second * cos + first * sin), dim=-1)  # (b, h, t, e)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, head_dim={self.head_dim}, base={self.base}"


def alibi_slopes(num_heads: int) -> list[float]:
    """ALiBi's per-head slopes (Press et al. 2022, §3).

    For n heads, n a power of two, the geometric sequence 2^(-8/n), 2^(-16/n), ..., 2^(-8). Otherwise
    the slopes of the largest power of two m below n, then every other slope of 2m (its 1st, 3rd, ...)
    until there are n.
    """
    if num_heads < 1:
        raise ValueError(f"alibi_slopes: num_heads must be >= 1; got {num_heads}")

    def geometric(n: int) -> list[float]:
        return [2.0 ** (-8.0 * h / n) for h in range(1, n + 1)]

    lower = 2 ** math.floor(math.log2(num_heads))
    if lower == num_heads:
        return geometric(num_heads)
    return geometric(lower) + geometric(2 * lower)[0::2][: num_heads - lower]


class AlibiPositions(Positions):
    """Attention with linear biases (Press et al. 2022): logits[h, q, k] += -m_h * |k - q|.

    The distance is symmetric, so the same bias serves encoders; under a causal mask the future
    half is masked anyway and this equals the paper's decoder bias.
    """

    slopes: Tensor  # (h,) buffer

    def __init__(self, *, embed_dim: int, num_heads: int, max_len: int = 2048):
        super().__init__(embed_dim=embed_dim, num_heads=num_heads, max_len=max_len)
        self.register_buffer("slopes", torch.tensor(alibi_slopes(num_heads)), persistent=False)  # (h,)

    def bias(self, i: int, j: int, offset: int | None = None) -> Tensor:
        distance = _relative_positions(i, j, offset, self.slopes.device).abs().to(self.slopes.dtype)  # (i, j)
        return -self.slopes[:, None, None] * distance  # (h, i, j)


def t5_bucket(
    relative_position: Tensor,
    *,
    num_buckets: int = 32,
    max_distance: int = 128,
    bidirectional: bool = True,
) -> Tensor:
    """Map relative positions (key_pos - query_pos) to T5's buckets (Raffel et al. 2020, §2.1).

    Bidirectional: buckets [0, n/2) hold keys at or before the query, [n/2, n) keys after it; within
    each half of size n' the first n'/2 distances get a bucket each and the rest share n'/2
    buckets spaced logarithmically up to max_distance; farther distances share the last bucket.
    Unidirectional: all n buckets go to keys at or before the query; later keys fall in bucket 0.

    Bucket edges are compared as integers: distance d reaches log bucket r when
    d >= exact * (max_distance / exact)^(r / (n' - exact)), so no float rounding at the edges.

    Args:
        relative_position: integer tensor of any shape.
    Returns:
        long tensor of the same shape, values in [0, num_buckets).
    """
    if relative_position.dtype.is_floating_point or relative_position.dtype == torch.bool:
        raise ValueError(f"t5_bucket: relative_position must be an integer tensor; got {relative_position.dtype}")
    half = num_buckets // 2 if bidirectional else num_buckets
    exact = half // 2
    if exact < 1 or max_distance <= exact:
        raise ValueError(
            f"t5_bucket: need num_buckets >= {4 if bidirectional else 2} and max_distance > the exact range "
            f"{exact}; got num_buckets={num_buckets}, max_distance={max_distance}"
        )
    rel = relative_position.long()
    if bidirectional:
        distance = rel.abs()
        start = torch.where(rel > 0, half, 0)  # keys after the query use the upper half
    else:
        distance = (-rel).clamp(min=0)
        start = torch.zeros_like(rel)
    log_buckets = half - exact
    ratio = max_distance / exact
    # The smallest integer distance in each log bucket after the first; the 1e-9 keeps an edge that
    # is an integer in exact arithmetic (8 * 16^(1/4) = 16) from rounding up past itself.
    edges = [math.ceil(exact * ratio ** (r / log_buckets) - 1e-9) for r in range(1, log_buckets)]
    edges_t = torch.tensor(edges, dtype=torch.long, device=rel.device)  # (log_buckets - 1,)
    far = exact + torch.bucketize(distance, edges_t, right=True)  # same shape as rel
    return start + torch.where(distance < exact, distance, far)


class T5Positions(Positions):
    """T5's relative position bias: a learned scalar per (bucket, head), bucketed by `t5_bucket`.

    Initialised from N(0, init_std^2); zero would also train (the bias adds to the logits), but a
    small random start makes heads differ from the first step.
    """

    def __init__(
        self,
        *,
        embed_dim: int,
        num_heads: int,
        max_len: int = 2048,
        num_buckets: int = 32,
        max_distance: int = 128,
        bidirectional: bool = True,
        init_std: float = 0.02,
    ):
        super().__init__(embed_dim=embed_dim, num_heads=num_heads, max_len=max_len)
        # Fail here, not at the first forward, on settings that leave no room for the log buckets.
        zero = torch.zeros(1, dtype=torch.long)
        t5_bucket(zero, num_buckets=num_buckets, max_distance=max_distance, bidirectional=bidirectional)
        self.num_buckets = num_buckets
        self.max_distance = max_distance
        self.bidirectional = bidirectional
        self.table = nn.Embedding(num_buckets, num_heads)
        nn.init.normal_(self.table.weight, std=init_std)

    def buckets(self, i: int, j: int, offset: int | None = None) -> Tensor:
        """The bucket of each (query, key) pair; (i, j) long. Arguments as in `bias`."""
        relative = _relative_positions(i, j, offset, self.table.weight.device)  # (i, j)
        return t5_bucket(
            relative, num_buckets=self.num_buckets, max_distance=self.max_distance, bidirectional=self.bidirectional
        )  # (i, j)

    def bias(self, i: int, j: int, offset: int | None = None) -> Tensor:
        return self.table(self.buckets(i, j, offset)).permute(2, 0, 1)  # (i, j, h) -> (h, i, j)

    def extra_repr(self) -> str:
        return (
            f"{super().extra_repr()}, num_buckets={self.num_buckets}, max_distance={self.max_distance}, "
            f"bidirectional={self.bidirectional}"
        )


POSITIONS: dict[str, type[Positions]] = {
    "none": Positions,
    "sinusoidal": SinusoidalPositions,
    "learned": LearnedPositions,
    "rope": RotaryPositions,
    "alibi": AlibiPositions,
    "t5": T5Positions,
}


def build_positions(
    name: str, *, embed_dim: int, num_heads: int, max_len: int = 2048, **kwargs: float | int | bool | None
) -> Positions:
    """Build a positional scheme by its registry name.

    Args:
        name: a key of POSITIONS.
        embed_dim: d, the model dim.
        num_heads: h, attention heads.
        max_len: longest sequence to prepare for.
        **kwargs: the scheme's own arguments (rope: head_dim, base; t5: num_buckets, max_distance,
            bidirectional, init_std; ...). An argument the scheme does not take is an error.
    Returns:
        The scheme, a Positions.
    """
    if name not in POSITIONS:
        raise ValueError(f"build_positions: unknown scheme {name!r}; choose one of {sorted(POSITIONS)}")
    cls = POSITIONS[name]
    accepted = set(inspect.signature(cls.__init__).parameters) - {"self", "embed_dim", "num_heads", "max_len"}
    unknown = sorted(set(kwargs) - accepted)
    if unknown:
        raise ValueError(
            f"build_positions: scheme {name!r} does not take {unknown}; it takes {sorted(accepted) or 'nothing more'}"
        )
    return cls(embed_dim=embed_dim, num_heads=num_heads, max_len=max_len, **kwargs)
