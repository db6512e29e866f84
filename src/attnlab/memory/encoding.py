"""Sentence encodings of the memory networks: a sentence as a weighted sum of its words' rows.

"bow" weighs every word 1. "position" is Sukhbaatar et al. 2015's PE (sec. 4.1),

    l_kj = (1 - j/J) - (k/d)(1 - 2j/J)        j, k count from 1, J the sentence's words, d dims

and "centred" is the PE of the authors' released code (facebookarchive/MemNN, MemN2N-babi-matlab),

    l_kj = 1 + 4 (k - (d+1)/2)(j - (J+1)/2) / (d J)        J fixed for every sentence and question

Both are two parts per word, l_kj = a_j + (k/d) b_j (`word_weights`), which `combine_parts` and
`part_tables` put together, so `memory.bags.weighted_bags` can sum them without gathering every
word's row. `padding_sums` is what the padding positions would weigh: the released code writes
padding as a "nil" word whose row is zero but takes a gradient (MemN2NConfig.nil_gradient).
"""

from __future__ import annotations

import typing

import torch
from torch import Tensor, nn

ENCODINGS = ("bow", "position", "centred")


def position_weights(tokens: Tensor, embed_dim: int) -> Tensor:
    """The PE weights l_kj of every word of every sentence; zero at padding.

    Words are counted from 1 among the sentence's non-padding tokens, and J is the sentence's own
    number of words, so padding anywhere in the sentence changes nothing.

    Args:
        tokens: (..., s) word ids, 0 = padding.
        embed_dim: d.
    Returns:
        (..., s, d) float weights.
    """
    present = (tokens != 0).float()  # (..., s)
    j = present.cumsum(-1).unsqueeze(-1)  # (..., s, 1)
    big_j = present.sum(-1, keepdim=True).clamp(min=1).unsqueeze(-1)  # (..., 1, 1)
    k = torch.arange(1, embed_dim + 1, dtype=torch.float32, device=tokens.device) / embed_dim  # (d,)
    weights = (1 - j / big_j) - k * (1 - 2 * j / big_j)  # (..., s, d)
    return weights * present.unsqueeze(-1)


def word_weights(tokens: Tensor, encoding: str, length: int = 0, embed_dim: int = 0) -> Tensor:
    """Each word's weight in its sentence's sum, split in parts: (..., s) ids -> (..., w, s).

    "bow": w = 1, every word 1. "position": w = 2, l_kj = a_j + (k/d) b_j with a_j = 1 - j/J and
    b_j = 2j/J - 1 (J the sentence's words, j counted among them), so the sentence vector is
    sum_j a_j A x_ij + (k/d) o sum_j b_j A x_ij (`combine_parts`). "centred": w = 2, the released
    code's l_kj = 1 + 4 (k - (d+1)/2)(j - (J+1)/2) / (d J) in the same form, a_j = 1 - 2 (d+1) c_j / (d J)
    and b_j = 4 c_j / J with c_j = j - (J+1)/2, J = `length` (0: s) for every sentence, d = `embed_dim`.
    Padding weighs 0.
    """
    present = (tokens != 0).float()  # (..., s)
    if encoding == "bow":
        return present[..., None, :]  # (..., 1, s)
    j = present.cumsum(-1)  # (..., s)
    if encoding == "centred":
        fixed, d = length or tokens.shape[-1], embed_dim
        if d < 1:
            raise ValueError(f"word_weights: the centred encoding needs embed_dim >= 1, got {d}")
        a, b = _centred_parts(j, fixed, d)  # (..., s) each
        return torch.stack([a * present, b * present], -2)  # (..., 2, s)
    big_j = present.sum(-1, keepdim=True).clamp(min=1)  # (..., 1)
    return torch.stack([(1 - j / big_j) * present, (2 * j / big_j - 1) * present], -2)  # (..., 2, s)


def _centred_parts(j: Tensor, length: int, embed_dim: int) -> tuple[Tensor, Tensor]:
    """a_j and b_j of the centred encoding, l_kj = a_j + (k/d) b_j, at word numbers j: (...,) each."""
    c = j - (length + 1) / 2  # (...,)
    return 1 - 2 * (embed_dim + 1) * c / (embed_dim * length), 4 * c / length


def centred_weight(position: int, length: int, embed_dim: int) -> Tensor:
    """The centred encoding's l_kj over k for word j = position of a J = length sentence: (d,)."""
    a, b = _centred_parts(torch.tensor(float(position)), length, embed_dim)  # () each
    k = torch.arange(1, embed_dim + 1, dtype=torch.float32)  # (d,)
    return a + (k / embed_dim) * b


def encode_sentences(embedding: nn.Module, tokens: Tensor, encoding: str, length: int = 0) -> Tensor:
    """Sum of word embeddings, weighted by PE when encoding is "position" or "centred".

    Args:
        embedding: an nn.Embedding, word ids -> (d,) vectors; its padding row must be zero (padding_idx=0).
        tokens: (..., s) word ids.
        encoding: "bow", "position" or "centred".
        length: J of "centred" (0: s).
    Returns:
        (..., d) sentence vectors.
    """
    weight = typing.cast(Tensor, embedding.weight)  # (V, d)
    weights = word_weights(tokens, encoding, length, weight.shape[1])  # (..., w, s)
    parts = weights.to(weight.dtype) @ embedding(tokens)  # (..., w, d)
    return combine_parts(parts, weight.shape[1])


def combine_parts(vectors: Tensor, embed_dim: int) -> Tensor:
    """The sentence vectors from their parts: (..., w, n*d) -> (..., n*d) for n tables side by side.

    w = 1 (bag of words): the part itself; w = 2 (PE): first + (k/d) o second, k = 1..d in every table.
    A weighted sum, not indexing, so the backward writes no (..., w, n*d) zeros.
    """
    if vectors.shape[-2] == 1:
        return vectors.sum(-2)  # (..., n*d)
    d, n = embed_dim, vectors.shape[-1] // embed_dim
    k = torch.arange(1, d + 1, dtype=vectors.dtype, device=vectors.device) / d  # (d,)
    coefficients = torch.stack([torch.ones_like(k), k]).repeat(1, n)  # (2, n*d)
    return (vectors * coefficients).sum(-2)  # (..., n*d)


def part_tables(rows: Tensor, parts: int, temporal: list[Tensor] | None = None) -> Tensor:
    """The table of each part of `combine_parts`' sum, for `memory.bags.weighted_bags`: (R, d) -> (w, R [+ T], d).

    w = 1: the rows themselves; w = 2 (PE): the rows, and the rows with column k scaled by k/d. The
    temporal rows, when given, follow in the first part, and zeros in the second (they weigh 0 there).
    """
    d = rows.shape[-1]
    if parts == 2:
        k = torch.arange(1, d + 1, dtype=rows.dtype, device=rows.device) / d  # (d,)
        scaled = [rows, rows * k]  # (R, d) each
    else:
        scaled = [rows]
    if temporal is not None:
        ages = torch.cat(temporal)  # (T, d)
        scaled = [torch.cat([part, ages if p == 0 else torch.zeros_like(ages)]) for p, part in enumerate(scaled)]
    return torch.stack(scaled)  # (w, R [+ T], d)


def padding_sums(padding: Tensor, encoding: str, length: int, embed_dim: int) -> Tensor:
    """What the padding of each sentence weighs in all: sum over padding positions j of l_kj.

    The released code writes padding as a "nil" word whose row is zero, so a sentence's vector
    holds sum_j l_kj E[nil] over its padding positions j, which is zero, but E[nil] takes the
    gradient through them (MemN2NConfig.nil_gradient). Positions are the columns, counted from 1,
    so a sentence's words must come first (as in bAbI, padded on the right).

    Args:
        padding: (..., n) bool, True where column j (j = 1..n <= length) holds padding.
        encoding: "bow" (every position weighs 1) or "centred" (J = length); "position" weighs a
            sentence by its own number of words, which gives padding no weight: a ValueError.
        length: J of "centred".
        embed_dim: d.
    Returns:
        (..., d) the sums.
    """
    if encoding not in ("bow", "centred"):
        raise ValueError(f"padding_sums: padding has a weight under 'bow' and 'centred' only, got {encoding!r}")
    pad = padding.float()  # (..., n)
    if encoding == "bow":
        return pad.sum(-1, keepdim=True).expand(*pad.shape[:-1], embed_dim)  # (..., d)
    j = torch.arange(1, pad.shape[-1] + 1, dtype=pad.dtype, device=pad.device)  # (n,)
    a, b = _centred_parts(j, length, embed_dim)  # (n,) each
    k = torch.arange(1, embed_dim + 1, dtype=pad.dtype, device=pad.device) / embed_dim  # (d,)
    return (pad @ a)[..., None] + (pad @ b)[..., None] * k  # (..., d)
