"""Modern Hopfield networks (Ramsauer et al. 2020, "Hopfield Networks is All You Need", arXiv:2008.02217).

Stored patterns X = (x_1..x_N) (rows of `patterns`, (b, j, d)), a state pattern xi (a row of
`queries`), inverse temperature beta:

    E(xi)  = -lse(beta, X xi) + 1/2 xi^T xi + beta^-1 log N + 1/2 M^2      eq. 2, `energy`
             lse(beta, z) = beta^-1 log sum_j exp(beta z_j),  M = max_j |x_j|
    xi_new = X^T softmax(beta X xi)                                        eq. 3, `hopfield_update`

The update is attention with the patterns as keys and values and beta as the scale:
`core.attend(xi, X, X, score="scaled_dot", score_args={"scale": beta})`. Each update lowers the
energy (their Theorem 1); with well separated patterns one update retrieves a stored pattern from
a noisy or partial query.

The Hopfield layer (their sec. 3, "Hopfield"): state patterns R (`queries`, (b, i, d_in)) attend
to stored patterns Y (`stored`, (b, j, d_s)) through learned projections, per head n = 1..h:

    Q_n = R W_Q,n    K_n = Y W_K,n    V_n = Y W_V,n
    Z   = Concat_n(softmax(beta Q_n K_n^T) V_n) W_O

This layer uses the simpler V = Y W_V (not V = Y W_K W_V) and, as multi-head attention does,
projects the concatenated heads with W_O; with one head, W_V W_O plays the paper's W_V. With
beta = 1/sqrt(head_dim) the layer is multi-head attention (`nn.MultiheadAttention`) exactly.
While traced, it records kind "hopfield" with weights (b, h, i, j).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from attnlab.core import Traced, attend


def hopfield_update(queries: Tensor, patterns: Tensor, beta: float, steps: int = 1) -> Tensor:
    """Apply the update xi <- X^T softmax(beta X xi) to every query `steps` times (eq. 3).

    Args:
        queries: (b, i, d) state patterns xi.
        patterns: (b, j, d) stored patterns X, one per row.
        beta: inverse temperature; large beta retrieves single patterns, small beta averages.
        steps: how many updates to apply.
    Returns:
        (b, i, d) updated state patterns.
    """
    if steps < 0:
        raise ValueError(f"steps must be >= 0, got {steps}")
    xi = queries[:, None]  # (b, 1, i, d)
    x = patterns[:, None]  # (b, 1, j, d)
    for _ in range(steps):
        xi = attend(xi, x, x, score="scaled_dot", score_args={"scale": beta}).out  # (b, 1, i, d)
    return xi[:, 0]  # (b, i, d)


def energy(queries: Tensor, patterns: Tensor, beta: float) -> Tensor:
    """The energy of each state pattern under the stored patterns (eq. 2).

    Args:
        queries: (b, i, d) state patterns xi.
        patterns: (b, j, d) stored patterns X.
        beta: inverse temperature.
    Returns:
        (b, i) energies E(xi) >= 0.
    """
    overlaps = queries @ patterns.transpose(1, 2)  # (b, i, j)
    lse = torch.logsumexp(beta * overlaps, -1) / beta  # (b, i)
    largest = patterns.norm(dim=-1).amax(-1, keepdim=True)  # (b, 1)
    n = patterns.shape[1]
    return -lse + 0.5 * queries.pow(2).sum(-1) + math.log(n) / beta + 0.5 * largest.pow(2)  # (b, i)


@dataclass(frozen=True)
class HopfieldConfig:
    """Sizes of a Hopfield layer."""

    input_size: int  # d_in, features of the state patterns R (queries)
    output_size: int  # d_out, features of the result Z
    hidden_size: int | None = None  # h * head_dim, the association space of Q and K; default input_size
    stored_size: int | None = None  # d_s, features of the stored patterns Y; default input_size
    num_heads: int = 1  # h, heads
    beta: float | None = None  # inverse temperature; default 1/sqrt(head_dim)
    bias: bool = True  # biases in the projections

    def __post_init__(self) -> None:
        for name in ("input_size", "output_size", "num_heads"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("hidden_size", "stored_size"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1 or None, got {getattr(self, name)}")
        if self.hidden % self.num_heads:
            raise ValueError(f"hidden_size must be divisible by num_heads {self.num_heads}, got {self.hidden}")
        if self.beta is not None and self.beta <= 0:
            raise ValueError(f"beta must be > 0 or None, got {self.beta}")

    @property
    def hidden(self) -> int:
        """h * head_dim, with the default filled in."""
        return self.input_size if self.hidden_size is None else self.hidden_size

    @property
    def head_dim(self) -> int:
        return self.hidden // self.num_heads


class Hopfield(Traced, nn.Module):
    """The Hopfield layer: state patterns retrieve from stored patterns through learned projections."""

    Config = HopfieldConfig

    def __init__(self, config: HopfieldConfig):
        super().__init__()
        self.config = config
        cfg = config
        stored = cfg.input_size if cfg.stored_size is None else cfg.stored_size
        self.beta = 1.0 / math.sqrt(cfg.head_dim) if cfg.beta is None else cfg.beta
        self.q_proj = nn.Linear(cfg.input_size, cfg.hidden, bias=cfg.bias)  # W_Q
        self.k_proj = nn.Linear(stored, cfg.hidden, bias=cfg.bias)  # W_K
        self.v_proj = nn.Linear(stored, cfg.hidden, bias=cfg.bias)  # W_V
        self.out_proj = nn.Linear(cfg.hidden, cfg.output_size, bias=cfg.bias)  # W_O

    def _heads(self, x: Tensor) -> Tensor:
        b, t, _ = x.shape
        return x.view(b, t, self.config.num_heads, self.config.head_dim).transpose(1, 2)  # (b, h, t, e)

    def forward(self, queries: Tensor, stored: Tensor, mask: Tensor | None = None) -> Tensor:
        """Retrieve from the stored patterns for every state pattern.

        Args:
            queries: (b, i, d_in) state patterns R.
            stored: (b, j, d_s) stored patterns Y.
            mask: bool, (b, j) per stored pattern or broadcastable to (b, h, i, j); True = may
                be retrieved. A query with no pattern gives zeros.
        Returns:
            (b, i, d_out) the result Z.
        """
        if mask is not None and mask.dim() == 2:
            mask = mask[:, None, None, :]  # (b, 1, 1, j)
        q = self._heads(self.q_proj(queries))  # (b, h, i, e)
        k = self._heads(self.k_proj(stored))  # (b, h, j, e)
        v = self._heads(self.v_proj(stored))  # (b, h, j, e)
        need = self.tracing
        out, weights = attend(
            q, k, v, score="scaled_dot", score_args={"scale": self.beta}, mask=mask, need_weights=need
        )  # (b, h, i, e)
        if weights is not None:  # asked for exactly when tracing
            self.record("hopfield", weights)
        b, _, i, _ = out.shape
        return self.out_proj(out.transpose(1, 2).reshape(b, i, self.config.hidden))  # (b, i, d_out)
