"""Sentences as weighted bags of words, summed without a tensor of every word's vector.

MemN2N and KV-MemNN encode a sentence as a weighted sum of its words' embedding rows. Bag of
words weighs every word 1; position encoding weighs column k of word j by l_kj = a_j + (k/d) b_j
(`encoding.word_weights`), which is two parts, each a scalar weight per word over its own table:
a_j over E and b_j over E with its columns scaled by k/d. So, with p parts,

    out[n] = sum_p sum_j weights[n, p, j] * E_p[tokens[n, j]]        n sentences, j words

Gathering each word's row first makes an (n, s, d) tensor, mostly padding (a bAbI story keeps 50
slots of 11 words), and its backward scatters as much back. `weighted_bags` reads only the rows of
present words (id != 0) through `F.embedding_bag`, and its backward is the same kind of sum the
other way round, over the occurrences of each word v:

    dE_p[v] = sum_{(n, j): tokens[n, j] = v} weights[n, p, j] * dout[n]

one `F.embedding_bag` over dout with the occurrences sorted by word. The weights are data (they
depend on the tokens only) and get no gradient. Under `torch.vmap` (K seeds of a model stacked,
`attnlab.train.vectorised`) the K tables become one (K V, d) table and seed k's word ids are
shifted by k V, so K seeds cost one call each way.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor


def weighted_bags(tokens: Tensor, weights: Tensor, tables: Tensor) -> Tensor:
    """Each sentence's weighted sum of its present words' rows, over p parts with a table each.

        out[n] = sum_p sum_j weights[n, p, j] * tables[p, tokens[n, j]]

    Args:
        tokens: (..., s) word ids; 0 is padding and never read.
        weights: (..., p, s) each word's weight in each part; treated as data (no gradient).
        tables: (p, V, d) each part's embedding rows (often views of one table, e.g. E and E scaled).
    Returns:
        (..., d) sums; zeros for a sentence without words.
    """
    if weights.requires_grad:
        raise ValueError("weighted_bags: the word weights get no gradient; pass them detached")
    lead, s = tokens.shape[:-1], tokens.shape[-1]
    p = tables.shape[0]
    if weights.shape != (*lead, p, s):
        raise ValueError(
            f"weighted_bags: weights {tuple(weights.shape)} do not fit tokens {tuple(tokens.shape)} and {p} tables"
        )
    out = _WeightedBags.apply(tokens.reshape(-1, s), weights.reshape(-1, p, s).to(tables.dtype), tables)  # (n, d)
    return out.view(*lead, tables.shape[-1])  # (..., d)


def _occurrences(tokens: Tensor, weights: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """The present words of tokens (n, s), sentence by sentence, and their weights (n, p, s).

    Returns ids (o,), the sentence of each (o,), the words per sentence (n,) and the weights (p, o).
    """
    n, p, s = weights.shape
    where = torch.flatten(tokens != 0).nonzero().squeeze(1)  # (o,) positions in the flattened (n s)
    words = tokens.flatten().index_select(0, where)  # (o,)
    sentence = torch.div(where, s, rounding_mode="floor")  # (o,)
    counts = torch.bincount(sentence, minlength=n)  # (n,)
    per_part = weights.transpose(0, 1).reshape(p, n * s).index_select(1, where)  # (p, o)
    return words, sentence, counts, per_part


class _WeightedBags(torch.autograd.Function):
    """tokens (n, s), weights (n, p, s), tables (p, V, d) -> (n, d); see the module docstring.

    The p tables are read as one (p V, d) table: part q of word v is row q V + v.
    """

    @staticmethod
    def forward(tokens: Tensor, weights: Tensor, tables: Tensor) -> Tensor:
        p, vocab, d = tables.shape
        words, _, counts, per_part = _occurrences(tokens, weights)  # (o,), (n,), (p, o)
        rows = words[:, None] + vocab * torch.arange(p, device=tokens.device)  # (o, p): a sentence's entries together
        starts = (counts.cumsum(0) - counts) * p  # (n,) where each sentence's bag begins
        return F.embedding_bag(rows.flatten(), tables.reshape(p * vocab, d), starts, mode="sum",
                               per_sample_weights=per_part.t().flatten())  # fmt: skip  # (n, d)

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple[Tensor, Tensor, Tensor], output: Tensor) -> None:
        tokens, weights, tables = inputs
        ctx.save_for_backward(tokens, weights)
        ctx.tables_shape = tables.shape

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[None, None, Tensor]:
        tokens, weights = ctx.saved_tensors  # (n, s), (n, p, s)
        p, vocab, d = ctx.tables_shape
        words, sentence, _, per_part = _occurrences(tokens, weights)  # (o,), (o,), (p, o)
        order = torch.argsort(words, stable=True)  # (o,) occurrences grouped by word
        counts = torch.bincount(words, minlength=vocab).repeat(p)  # (p V,) entries of row q V + v's bag
        offsets = counts.cumsum(0) - counts  # (p V,)
        dtables = F.embedding_bag(sentence[order].repeat(p), grad, offsets, mode="sum",
                                  per_sample_weights=per_part[:, order].flatten())  # fmt: skip  # (p V, d)
        return None, None, dtables.view(p, vocab, d)

    @staticmethod
    def vmap(info: Any, in_dims: tuple[int | None, ...], tokens: Tensor, weights: Tensor, tables: Tensor
             ) -> tuple[Tensor, int]:  # fmt: skip
        """K stacked calls as one: the K tables of a part side by side (K V rows), seed k's ids shifted by k V."""
        k = info.batch_size
        tokens, weights, tables = (
            x.movedim(dim, 0) if dim is not None else x.expand(k, *x.shape)
            for x, dim in zip((tokens, weights, tables), in_dims, strict=True)
        )  # (K, n, s), (K, n, p, s), (K, p, V, d)
        _, p, vocab, d = tables.shape
        shift = torch.arange(k, device=tokens.device).view(k, 1, 1) * vocab * (tokens != 0)  # (K, n, s); 0 stays 0
        joined = tables.transpose(0, 1).reshape(p, k * vocab, d)  # (p, K V, d)
        out = _WeightedBags.apply((tokens + shift).flatten(0, 1), weights.flatten(0, 1), joined)  # (K n, d)
        return out.view(k, -1, d), 0  # (K, n, d)
