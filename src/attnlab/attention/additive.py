"""Attention for recurrent encoder-decoders: Bahdanau (additive) and Luong (dot, general, concat).

Bahdanau, Cho & Bengio 2015, "Neural Machine Translation by Jointly Learning to Align and
Translate", eq. 5-6 and appendix A.1.2:

    e_ij     = v_a^T tanh(W_a s_{i-1} + U_a h_j)   AdditiveAttention: query_proj.weight = W_a,
                                                   key_proj = U_a (with its bias), v = v_a
    alpha_ij = softmax_j(e_ij)                     core.attend
    c_i      = sum_j alpha_ij h_j                  the returned context

Luong, Pham & Manning 2015, "Effective Approaches to Attention-based Neural Machine Translation",
§3.1, eq. 7-8 (global attention):

    score(h_t, hs_s) = h_t^T hs_s                  method "dot"
                     = h_t^T W_a hs_s              method "general": weight_proj.weight = W_a
                     = v_a^T tanh(W_a [h_t; hs_s]) method "concat":  concat_proj.weight = W_a, v = v_a

Both modules return the context only; combining it with the decoder state (Luong's
h~_t = tanh(W_c [c_t; h_t]), Bahdanau's recurrent update) belongs to the decoder. The weights go to
an attached trace as kind "cross", (b, 1, i, j): one head.

Queries are (b, query_dim) for one decoder step or (b, i, query_dim) for all steps at once (a
teacher-forced decoder, or Luong's model where h_t does not depend on c_t).

A fused decoder step (attnlab.models.bahdanau, attnlab.models.luong) projects the keys once per sentence
(`project_keys` of either module) and calls `additive_context` or `dot_context` at every step:
the same scores through the same `attend`, without the per-call checks and projections, and
without weights (a trace runs the modules themselves).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from attnlab.core import Traced, attend, dot, key_mask

LUONG_METHODS = ("dot", "general", "concat")


def _check_inputs(
    owner: str,
    query: Tensor,
    keys: Tensor,
    values: Tensor | None,
    mask: Tensor | None,
    query_dim: int,
    key_dim: int,
) -> tuple[Tensor, Tensor, Tensor, Tensor | None, bool]:
    """Validate and lift the inputs to attend's (b, 1, ., .) layout; also say if the query was one step."""
    if query.dim() not in (2, 3) or query.shape[-1] != query_dim:
        raise ValueError(
            f"{owner}: query must be (b, query_dim={query_dim}) or (b, i, query_dim={query_dim}); "
            f"got shape {tuple(query.shape)}"
        )
    b = query.shape[0]
    if keys.dim() != 3 or keys.shape[0] != b or keys.shape[-1] != key_dim:
        raise ValueError(f"{owner}: keys must be (b={b}, j, key_dim={key_dim}); got shape {tuple(keys.shape)}")
    j = keys.shape[1]
    values = keys if values is None else values
    if values.dim() != 3 or values.shape[:2] != keys.shape[:2]:
        raise ValueError(f"{owner}: values must be (b={b}, j={j}, value_dim); got shape {tuple(values.shape)}")
    if mask is not None:
        if mask.dtype != torch.bool or tuple(mask.shape) != (b, j):
            raise ValueError(
                f"{owner}: mask must be bool (b={b}, j={j}), True = real source token; "
                f"got {mask.dtype} of shape {tuple(mask.shape)}"
            )
        mask = key_mask(mask)  # (b, 1, 1, j)
    single = query.dim() == 2
    q = query[:, None, None, :] if single else query[:, None]  # (b, 1, i, query_dim)
    return q, keys[:, None], values[:, None], mask, single  # (b, 1, j, key_dim), (b, 1, j, f)


def additive_context(query: Tensor, keys: Tensor, values: Tensor, mask: Tensor | None, v: Tensor) -> Tensor:
    """Bahdanau's context for one decoder step from a projected query and projected keys.

    e_ij = v_a^T tanh(query + keys_j), c_i = sum_j softmax_j(e_ij) values_j.

    Args:
        query: (b, a) W_a s_{i-1}.
        keys: (b, j, a) U_a h_j + bias (AdditiveAttention.project_keys).
        values: (b, j, f) the annotations h_j.
        mask: (b, 1, 1, j) bool (core.key_mask of the (b, j) mask), True = real token; or None.
        v: (a,) v_a.
    Returns:
        (b, f) c_i.
    """
    q = query.unsqueeze(1).unsqueeze(1)  # (b, 1, 1, a)
    out, _ = attend(q, keys.unsqueeze(1), values.unsqueeze(1), score="additive", score_args={"v": v}, mask=mask)
    return out.view(out.shape[0], -1)  # (b, f)


def dot_context(query: Tensor, keys: Tensor, values: Tensor, mask: Tensor | None) -> Tensor:
    """Luong's context for one decoder step from keys that a dot product scores (LuongAttention.project_keys).

    score(h_t, hs_s) = h_t . keys_s, which is Luong's "dot" (keys = hs_s) or "general" (keys = W_a hs_s).

    Args:
        query: (b, e) h_t.
        keys: (b, j, e) projected keys.
        values: (b, j, f) the encoder states hs_s.
        mask: (b, 1, 1, j) bool (core.key_mask of the (b, j) mask), True = real token; or None.
    Returns:
        (b, f) c_t.
    """
    # The score as a function, not by name: attend's matmul path instead of SDPA's CPU kernel, which
    # costs as much for a single query and which torch.compile cannot fuse with the step around it.
    q = query.unsqueeze(1).unsqueeze(1)  # (b, 1, 1, e)
    out, _ = attend(q, keys.unsqueeze(1), values.unsqueeze(1), score=dot, mask=mask)
    return out.view(out.shape[0], -1)  # (b, f)


def _context(out: Tensor, single: bool) -> Tensor:
    out = out[:, 0]  # (b, i, f)
    return out[:, 0] if single else out  # (b, f) for one step


class AdditiveAttention(Traced, nn.Module):
    """Bahdanau's additive attention: e_ij = v_a^T tanh(W_a s_{i-1} + U_a h_j).

    W_a (query_proj, attn_dim x query_dim) has no bias; U_a (key_proj, attn_dim x key_dim) carries
    the one bias of the score (a second one on W_a would add nothing inside the same sum). All are
    initialised like nn.Linear, v_a uniformly in +-1/sqrt(attn_dim); the paper's N(0, 0.001^2) and
    v_a = 0 start from uniform weights, which is valid but makes a fresh module uninformative.

    The keys' projection U_a h_j does not depend on the decoder step: compute it once per source
    sentence with `project_keys` and pass it as `projected_keys` at every step.

    Args:
        query_dim: size of the decoder state s_{i-1}.
        key_dim: size of the annotations h_j.
        attn_dim: size of the hidden layer of the score.
    """

    def __init__(self, query_dim: int, key_dim: int, attn_dim: int):
        super().__init__()
        self.query_dim = query_dim
        self.key_dim = key_dim
        self.attn_dim = attn_dim
        self.query_proj = nn.Linear(query_dim, attn_dim, bias=False)  # W_a
        self.key_proj = nn.Linear(key_dim, attn_dim)  # U_a, with bias
        bound = 1.0 / math.sqrt(attn_dim)
        self.v = nn.Parameter(torch.empty(attn_dim).uniform_(-bound, bound))  # v_a

    def project_keys(self, keys: Tensor) -> Tensor:
        """U_a h_j + bias for every source position.

        Args:
            keys: (b, j, key_dim) annotations.
        Returns:
            (b, j, attn_dim).
        """
        if keys.dim() != 3 or keys.shape[-1] != self.key_dim:
            raise ValueError(
                f"AdditiveAttention.project_keys: keys must be (b, j, key_dim={self.key_dim}); "
                f"got shape {tuple(keys.shape)}"
            )
        return self.key_proj(keys)  # (b, j, attn_dim)

    def forward(
        self,
        query: Tensor,
        keys: Tensor,
        values: Tensor | None = None,
        *,
        mask: Tensor | None = None,
        projected_keys: Tensor | None = None,
    ) -> Tensor:
        """The context vector(s).

        Args:
            query: (b, query_dim) one decoder step, or (b, i, query_dim).
            keys: (b, j, key_dim) encoder annotations h_j.
            values: (b, j, value_dim); defaults to keys.
            mask: (b, j) bool, True = real source token.
            projected_keys: (b, j, attn_dim) from `project_keys(keys)`; computed here when None.
        Returns:
            (b, value_dim) or (b, i, value_dim), matching the query's rank.
        """
        owner = "AdditiveAttention"
        q, _, v, mask, single = _check_inputs(owner, query, keys, values, mask, self.query_dim, self.key_dim)
        if projected_keys is None:
            projected_keys = self.key_proj(keys)  # (b, j, attn_dim)
        elif tuple(projected_keys.shape) != (keys.shape[0], keys.shape[1], self.attn_dim):
            raise ValueError(
                f"{owner}: projected_keys must be (b={keys.shape[0]}, j={keys.shape[1]}, attn_dim={self.attn_dim}); "
                f"got shape {tuple(projected_keys.shape)}"
            )
        need = self.tracing
        out, weights = attend(
            q,
            projected_keys[:, None],  # (b, 1, j, attn_dim)
            v,
            score="additive",
            score_args={"v": self.v, "w_q": self.query_proj.weight},
            mask=mask,
            need_weights=need,
        )  # (b, 1, i, f)
        if weights is not None:  # asked for exactly when tracing
            self.record("cross", weights)
        return _context(out, single)

    def step_with_weights(
        self, query: Tensor, values: Tensor, projected_keys: Tensor, **extra: object
    ) -> tuple[Tensor, Tensor]:
        """One decoder step that also needs its weights (a regulariser on them, or a location sampled
        from them), over keys already projected; records them to an attached trace as "cross".

        Args:
            query: (b, query_dim) s_{i-1}.
            values: (b, j, f) what the weights average, the annotations.
            projected_keys: (b, j, attn_dim) from `project_keys`.
            extra: recorded with the weights (the caller's reading of them, e.g. sampled=True).
        Returns:
            the context (b, f) and the weights alpha (b, j).
        """
        q = self.query_proj(query)[:, None, None]  # (b, 1, 1, attn_dim)
        out, weights = attend(
            q, projected_keys[:, None], values[:, None], score="additive", score_args={"v": self.v}, need_weights=True
        )  # (b, 1, 1, f), (b, 1, 1, j)
        assert weights is not None  # need_weights=True always returns them
        if self.tracing:
            self.record("cross", weights, **extra)
        return out[:, 0, 0], weights[:, 0, 0]  # (b, f), (b, j)

    def extra_repr(self) -> str:
        return f"query_dim={self.query_dim}, key_dim={self.key_dim}, attn_dim={self.attn_dim}"


class LuongAttention(Traced, nn.Module):
    """Luong's global attention with the score chosen by `method`.

    "dot" has no parameters and needs query_dim == key_dim. "general" learns W_a (query_dim x
    key_dim, weight_proj.weight). "concat" learns W_a (attn_dim x (query_dim + key_dim),
    concat_proj.weight) and v_a; since W_a [h_t; hs_s] = W_q h_t + W_k hs_s for the two column blocks
    of W_a, it is the additive score with no bias. The paper's scores are not scaled by 1/sqrt(dim).

    Args:
        query_dim: size of the decoder state h_t.
        key_dim: size of the encoder states hs_s.
        method: "dot", "general" or "concat".
        attn_dim: hidden size of "concat" (default key_dim); not accepted by the other methods.
    """

    def __init__(self, query_dim: int, key_dim: int, method: str = "general", attn_dim: int | None = None):
        super().__init__()
        if method not in LUONG_METHODS:
            raise ValueError(f"LuongAttention: unknown method {method!r}; choose one of {list(LUONG_METHODS)}")
        if method == "dot" and query_dim != key_dim:
            raise ValueError(
                f"LuongAttention: method 'dot' needs query_dim == key_dim; got query_dim={query_dim}, key_dim={key_dim}"
            )
        if attn_dim is not None and method != "concat":
            raise ValueError(f"LuongAttention: attn_dim is only used by method 'concat'; got method {method!r}")
        self.query_dim = query_dim
        self.key_dim = key_dim
        self.method = method
        self.attn_dim = None
        if method == "general":
            self.weight_proj = nn.Linear(key_dim, query_dim, bias=False)  # W_a, (query_dim, key_dim)
        elif method == "concat":
            self.attn_dim = key_dim if attn_dim is None else attn_dim
            self.concat_proj = nn.Linear(query_dim + key_dim, self.attn_dim, bias=False)  # W_a
            bound = 1.0 / math.sqrt(self.attn_dim)
            self.v = nn.Parameter(torch.empty(self.attn_dim).uniform_(-bound, bound))  # v_a

    def project_keys(self, keys: Tensor) -> Tensor:
        """The keys that `dot_context` scores with a plain dot product: hs_s ("dot") or W_a hs_s ("general").

        h_t^T W_a hs_s = h_t . (W_a hs_s), so "general" projects each source state once per sentence
        instead of the query at every step. "concat" is additive (AdditiveAttention).

        Args:
            keys: (b, j, key_dim) encoder states hs_s.
        Returns:
            (b, j, query_dim).
        """
        if keys.dim() != 3 or keys.shape[-1] != self.key_dim:
            raise ValueError(
                f"LuongAttention.project_keys: keys must be (b, j, key_dim={self.key_dim}); got shape {tuple(keys.shape)}"
            )
        if self.method == "concat":
            raise ValueError("LuongAttention.project_keys: method 'concat' is additive; it has no dot-product keys")
        return self.weight_proj(keys) if self.method == "general" else keys  # (b, j, query_dim)

    def _score(self) -> tuple[str, dict[str, Tensor]]:
        if self.method == "dot":
            return "dot", {}
        if self.method == "general":
            return "general", {"weight": self.weight_proj.weight}
        w = self.concat_proj.weight  # (attn_dim, query_dim + key_dim)
        return "additive", {"v": self.v, "w_q": w[:, : self.query_dim], "w_k": w[:, self.query_dim :]}

    def forward(
        self,
        query: Tensor,
        keys: Tensor,
        values: Tensor | None = None,
        *,
        mask: Tensor | None = None,
    ) -> Tensor:
        """The context vector(s) c_t.

        Args:
            query: (b, query_dim) one decoder step, or (b, i, query_dim).
            keys: (b, j, key_dim) encoder states hs_s.
            values: (b, j, value_dim); defaults to keys.
            mask: (b, j) bool, True = real source token.
        Returns:
            (b, value_dim) or (b, i, value_dim), matching the query's rank.
        """
        q, k, v, mask, single = _check_inputs("LuongAttention", query, keys, values, mask, self.query_dim, self.key_dim)
        score, score_args = self._score()
        need = self.tracing
        out, weights = attend(q, k, v, score=score, score_args=score_args, mask=mask, need_weights=need)  # (b, 1, i, f)
        if weights is not None:  # asked for exactly when tracing
            self.record("cross", weights)
        return _context(out, single)

    def extra_repr(self) -> str:
        extra = f", attn_dim={self.attn_dim}" if self.attn_dim is not None else ""
        return f"query_dim={self.query_dim}, key_dim={self.key_dim}, method={self.method!r}{extra}"
