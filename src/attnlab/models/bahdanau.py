"""Bahdanau et al. 2015, "Neural Machine Translation by Jointly Learning to Align and Translate".

A bidirectional GRU encoder (attnlab.models.seq2seq.RecurrentEncoder), annotations
h_j = [h_fwd_j; h_bwd_j], and a GRU decoder that attends over them at every step:

    s_0 = tanh(W_s h_bwd_1)                          init
    c_i = sum_j alpha_ij h_j, e_ij = a(s_{i-1}, h_j) attention (AdditiveAttention; U_a h_j
                                                     projected once per sentence)
    s_i = GRU([E y_{i-1}; c_i], s_{i-1})             cell
    logits_i = W_o [s_i; c_i; E y_{i-1}]             out (DeepOutput)

Paths of teacher forcing (attnlab.core.fast): "eager" is the loop as written
(`teacher_force_eager`); "fast" hoists out of the loop what does not depend on the recurrence: the
target embeddings' share of the GRU's input gates for all steps (one matmul), the keys'
projection, the lifted mask; each step (`bahdanau_step`) is then a few large ops: one matmul of
s_{i-1} for everything that reads it (W_a s and the GRU's hidden gates), the context by
`additive_context`, and nn.GRUCell's update on the gates computed outside
(`attnlab.core.cells.gru_update`). "compiled" runs steps 2..n of the same function through
torch.compile, once per process, while autograd records (a call without a graph runs the fused
step: it would compile a graph of its own). Dropout draws the same numbers in the same order on
every path. Incremental decoding (`step`) and traced calls run the eager modules.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from attnlab.attention.additive import AdditiveAttention, additive_context
from attnlab.core import key_mask
from attnlab.core.cells import gru_update
from attnlab.core.fast import FastPath
from attnlab.models.baselines import check_at_least
from attnlab.models.registry import MODELS
from attnlab.models.seq2seq import (
    COMPILED_STEPS,
    DeepOutput,
    RecurrentEncoder,
    RecurrentSeq2Seq,
    RecurrentSeq2SeqConfig,
    source_sized,
)
from attnlab.spec import TaskSpec


@dataclass(frozen=True)
class BahdanauConfig(RecurrentSeq2SeqConfig):
    attn_dim: int = 56  # hidden size of the additive score

    def __post_init__(self) -> None:
        super().__post_init__()
        check_at_least(self, "attn_dim", 1)


class BahdanauStepWeights(NamedTuple):
    """What one fused Bahdanau decoder step reads (matrices transposed once, not at every step)."""

    state_w: Tensor  # (H, a + 3H) [W_a; W_hh]^T: s_{i-1} feeds the score and the GRU's hidden gates
    state_b: Tensor  # (a + 3H,) [0; b_hh]
    context_w: Tensor  # (2H, 3H) the GRU's input weights on c_i, transposed
    v: Tensor  # (a,) v_a


def bahdanau_step(
    s: Tensor, x: Tensor, keys: Tensor, annotations: Tensor, mask: Tensor, w: BahdanauStepWeights
) -> tuple[Tensor, Tensor]:
    """One decoder step of Bahdanau et al. 2015 in few ops.

    c_i from s_{i-1} (additive attention), then s_i = GRU([E y_{i-1}; c_i], s_{i-1}).

    Args:
        s: (b, H) s_{i-1}.
        x: (b, 3H) the GRU's input gates from E y_{i-1}, with b_ih (computed for all steps at once).
        keys: (b, j, a) U_a h_j + bias.
        annotations: (b, j, 2H) h_j.
        mask: (b, 1, 1, j) bool, True = real source token.
        w: the step's weights.
    Returns:
        s_i (b, H) and c_i (b, 2H).
    """
    attn_dim = w.v.shape[0]
    projected = torch.addmm(w.state_b, s, w.state_w)  # (b, a + 3H): W_a s and W_hh s + b_hh in one matmul
    query, hidden_gates = projected.split([attn_dim, projected.shape[1] - attn_dim], dim=1)  # (b, a), (b, 3H)
    c = additive_context(query, keys, annotations, mask, w.v)  # (b, 2H)
    return gru_update(torch.addmm(x, c, w.context_w), hidden_gates, s), c  # (b, H)


@MODELS.register("bahdanau", defaults={"hidden_dim": 56})
class Bahdanau(FastPath, RecurrentSeq2Seq):
    """Bidirectional GRU encoder, GRU decoder with additive attention over the annotations.

    hidden_dim H is the decoder's state and each encoder direction's (annotations are 2H);
    num_layers stacks bidirectional encoder layers, the decoder is one GRU cell.
    """

    Config = BahdanauConfig
    name = "bahdanau"
    fast_step_name = "fused decoder step"

    def __init__(self, config: BahdanauConfig, spec: TaskSpec):
        super().__init__(config, spec)
        e, h = config.embed_dim, config.hidden_dim
        self.encoder = RecurrentEncoder(spec, "gru", e, h, config.num_layers, config.dropout, bidirectional=True)
        self.init = nn.Linear(h, h)  # W_s
        self.attention = AdditiveAttention(h, 2 * h, config.attn_dim)
        self.cell = nn.GRUCell(e + 2 * h, h)
        self.out = DeepOutput(h + 2 * h + e, config.output_dim, spec.num_outputs)

    def start(self, inputs: Tensor) -> dict:
        """Encode once: s_0, the annotations, U_a h_j and the PAD mask."""
        annotations, mask, final = self.encoder(inputs)  # (b, j, 2H), (b, j), (layers * 2, b, H)
        return {
            "s": torch.tanh(self.init(final[-1])),  # (b, H) from the top layer's backward state at token 1
            "annotations": annotations,
            "keys": self.attention.project_keys(annotations),  # (b, j, attn_dim)
            "mask": mask,
        }

    def _advance(self, previous: Tensor, state: dict) -> tuple[Tensor, Tensor]:
        """previous (b, e) embedded y_{i-1} -> (s_i (b, H), c_i (b, 2H))."""
        s, annotations = state["s"], state["annotations"]
        c = self.attention(s, annotations, mask=state["mask"], projected_keys=state["keys"])  # (b, 2H)
        return self.cell(torch.cat([previous, c], dim=-1), s), c  # (b, H)

    def step_weights(self) -> BahdanauStepWeights:
        """The weights `bahdanau_step` reads, transposed and concatenated once per sentence batch."""
        e, cell, attention = self.config.embed_dim, self.cell, self.attention
        return BahdanauStepWeights(
            torch.cat([attention.query_proj.weight, cell.weight_hh]).t(),  # (H, a + 3H)
            torch.cat([cell.bias_hh.new_zeros(attention.attn_dim), cell.bias_hh]),  # (a + 3H,)
            cell.weight_ih[:, e:].t(),  # (2H, 3H)
            attention.v,
        )

    def teacher_force(self, inputs: Tensor, targets: Tensor) -> Tensor:
        """inputs (b, s), targets (b, n) -> logits (b, n, o), each step fed the previous target (`path`'s loop)."""
        if self.path == "eager" or self.attention.tracing:
            return self.teacher_force_eager(inputs, targets)
        state = self.start(inputs)
        previous = self._previous(targets)  # (b, n, e)
        e = previous.shape[-1]
        x = F.linear(previous.transpose(0, 1), self.cell.weight_ih[:, :e], self.cell.bias_ih)  # (n, b, 3H), all steps
        w = self.step_weights()
        compiling = self.path == "compiled" and torch.is_grad_enabled()
        keys, annotations, mask = source_sized(
            compiling, (state["keys"], 1), (state["annotations"], 1), (key_mask(state["mask"]), 3)
        )  # (b, j, a), (b, j, 2H), (b, 1, 1, j)
        step = COMPILED_STEPS.get(bahdanau_step, "bahdanau.step") if compiling else bahdanau_step
        s, c = [], []
        s_i = state["s"]  # (b, H)
        for i, x_i in enumerate(x.unbind(0)):
            s_i, c_i = (bahdanau_step if i == 0 else step)(s_i, x_i, keys, annotations, mask, w)
            s.append(s_i)
            c.append(c_i)
        features = torch.cat([torch.stack(s, 1), torch.stack(c, 1), previous], dim=-1)  # (b, n, 3H + e)
        return self.out(self.drop(features))  # (b, n, o)

    def teacher_force_eager(self, inputs: Tensor, targets: Tensor) -> Tensor:
        """The readable loop (the oracle of the other paths): inputs (b, s), targets (b, n) -> logits (b, n, o)."""
        state = self.start(inputs)
        previous = self._previous(targets)  # (b, n, e)
        s, c = [], []
        for y in previous.unbind(1):  # unbind, not slicing: its backward is one stack, not n zero-filled copies
            s_i, c_i = self._advance(y, state)
            state["s"] = s_i
            s.append(s_i)
            c.append(c_i)
        features = torch.cat([torch.stack(s, 1), torch.stack(c, 1), previous], dim=-1)  # (b, n, 3H + e)
        return self.out(self.drop(features))  # (b, n, o)

    def step(self, tokens: Tensor, state: dict) -> tuple[Tensor, dict]:
        """tokens (b,) y_{i-1} -> (logits (b, o), the next state)."""
        previous = self.drop(self.tgt_embed(tokens))  # (b, e)
        s, c = self._advance(previous, state)  # (b, H), (b, 2H)
        logits = self.out(self.drop(torch.cat([s, c, previous], dim=-1)))  # (b, o)
        return logits, {**state, "s": s}
