"""Luong et al. 2015, "Effective Approaches to Attention-based Neural Machine Translation".

Global attention with input feeding (§3.1, §3.3) over an LSTM encoder
(attnlab.models.seq2seq.RecurrentEncoder), optionally bidirectional:

    h_t = LSTM([E y_{t-1}; h~_{t-1}], h_{t-1})      decoder, h~_0 = 0
    c_t = sum_s a_t(s) hs_s, score "dot"/"general"   attention (LuongAttention)
    h~_t = tanh(W_c [c_t; h_t])                      combine
    logits_t = W_s h~_t                              out

Paths of teacher forcing (attnlab.core.fast): "eager" is the loop as written
(`teacher_force_eager`); "fast" hoists out of the loop what does not depend on the recurrence: the
target embeddings' share of the first layer's input gates for all steps (one matmul), the keys'
projection, the lifted mask; each step (`luong_step`) is then a few large ops: one matmul of
[input; h] per LSTM layer, nn.LSTMCell's update on the gates computed outside
(`attnlab.core.cells.lstm_update`), and the context by `dot_context`. "compiled" runs steps 2..n
of the same function through torch.compile, once per process, while autograd records (a call
without a graph runs the fused step: it would compile a graph of its own). Dropout draws the
same numbers in the same order on every path. Incremental decoding (`step`) and traced calls run
the eager modules.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from attnlab.attention.additive import LUONG_METHODS, LuongAttention, dot_context
from attnlab.core import key_mask
from attnlab.core.cells import lstm_update
from attnlab.core.fast import FastPath
from attnlab.models.registry import MODELS
from attnlab.models.seq2seq import (
    COMPILED_STEPS,
    RecurrentEncoder,
    RecurrentSeq2Seq,
    RecurrentSeq2SeqConfig,
    State,
    batch_first,
    layers_first,
    source_sized,
)
from attnlab.spec import TaskSpec


@dataclass(frozen=True)
class LuongConfig(RecurrentSeq2SeqConfig):
    method: str = "general"  # the score: "dot" or "general"
    bidirectional: bool = False  # encoder LSTM in both directions, hidden_dim / 2 each (hidden_dim even)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.method not in LUONG_METHODS[:2]:
            raise ValueError(f"LuongConfig.method: {self.method!r} is not one of dot, general")
        if self.output_dim:
            raise ValueError("LuongConfig.output_dim: must be 0; the attentional layer h~ already precedes the output")
        if self.bidirectional and self.hidden_dim % 2:
            raise ValueError(f"LuongConfig.hidden_dim: must be even with bidirectional; got {self.hidden_dim}")


class LuongStepWeights(NamedTuple):
    """What one fused Luong decoder step reads."""

    layer_w: tuple[Tensor, ...]  # per layer (in + H, 4H) [W_ih, W_hh]^T on [input; h]; layer 0's input is h~_{t-1} only
    layer_b: tuple[Tensor, ...]  # per layer from the second: (4H,) b_ih + b_hh (layer 0's are in the input gates)
    combine_w: Tensor  # (2H, H) W_c^T


def luong_step(
    x: Tensor,
    feed: Tensor,
    hidden: tuple[Tensor, ...],
    cells: tuple[Tensor, ...],
    keys: Tensor,
    memory: Tensor,
    mask: Tensor,
    w: LuongStepWeights,
    drops: tuple[Tensor, ...],
) -> tuple[Tensor, tuple[Tensor, ...], tuple[Tensor, ...]]:
    """One decoder step of Luong et al. 2015 (input feeding) in few ops.

    h_t = LSTM([E y_{t-1}; h~_{t-1}], h_{t-1}) layer by layer, c_t from the top h_t,
    h~_t = tanh(W_c [c_t; h_t]).

    Args:
        x: (b, 4H) the first layer's input gates from E y_{t-1}, with both its biases.
        feed: (b, H) h~_{t-1}.
        hidden: per layer (b, H) h_{t-1}.
        cells: per layer (b, H) c_{t-1}.
        keys: (b, j, H) LuongAttention.project_keys(memory).
        memory: (b, j, H) the encoder states hs_s.
        mask: (b, 1, 1, j) bool, True = real source token.
        w: the step's weights.
        drops: per layer but the last, the (b, H) dropout mask (kept / (1 - p)) on its output; empty
            without dropout.
    Returns:
        h~_t (b, H), and the new hidden and cells, per layer (b, H).
    """
    new_hidden, new_cells = [], []
    inputs = feed  # (b, H)
    for layer, (h, c) in enumerate(zip(hidden, cells)):
        both = torch.cat([inputs, h], dim=1)  # (b, in + H)
        gates = torch.addmm(x if layer == 0 else w.layer_b[layer - 1], both, w.layer_w[layer])  # (b, 4H)
        h, c = lstm_update(gates, c)  # (b, H) each
        new_hidden.append(h)
        new_cells.append(c)
        inputs = h * drops[layer] if layer < len(drops) else h  # (b, H)
    context = dot_context(h, keys, memory, mask)  # (b, H)
    feed = torch.tanh(torch.cat([context, h], dim=1) @ w.combine_w)  # (b, H)
    return feed, tuple(new_hidden), tuple(new_cells)


@MODELS.register("luong")
class Luong(FastPath, RecurrentSeq2Seq):
    """LSTM encoder-decoder with Luong's global attention and input feeding.

    A bidirectional encoder has hidden_dim / 2 per direction, concatenated, so its states (and the
    decoder's initial state, layer by layer) are hidden_dim wide and "dot" needs no projection.
    """

    Config = LuongConfig
    name = "luong"
    fast_step_name = "fused decoder step"

    def __init__(self, config: LuongConfig, spec: TaskSpec):
        super().__init__(config, spec)
        e, h, layers = config.embed_dim, config.hidden_dim, config.num_layers
        enc_dim = h // 2 if config.bidirectional else h
        self.encoder = RecurrentEncoder(spec, "lstm", e, enc_dim, layers, config.dropout, config.bidirectional)
        self.decoder = nn.LSTM(
            e + h, h, num_layers=layers, batch_first=True, dropout=config.dropout if layers > 1 else 0.0
        )
        self.attention = LuongAttention(h, h, config.method)
        self.combine = nn.Linear(2 * h, h, bias=False)  # W_c
        self.out = nn.Linear(h, spec.num_outputs)  # W_s

    def start(self, inputs: Tensor) -> dict:
        """Encode once: the decoder state (h, c) batch first, h~_0 = 0, the encoder states and PAD mask."""
        memory, mask, (h, c) = self.encoder(inputs)  # (b, j, H), (b, j), (layers * dirs, b, H / dirs)
        if self.config.bidirectional:
            layers, b = self.config.num_layers, h.shape[1]
            # (layers * 2, b, H/2) -> (layers, b, H): each layer's forward and backward state side by side
            h = h.view(layers, 2, b, -1).transpose(1, 2).reshape(layers, b, -1)  # (layers, b, H)
            c = c.view(layers, 2, b, -1).transpose(1, 2).reshape(layers, b, -1)  # (layers, b, H)
        feed = memory.new_zeros(memory.shape[0], self.config.hidden_dim)  # (b, H)
        return {"hidden": batch_first((h, c)), "feed": feed, "memory": memory, "mask": mask}

    def _advance(self, previous: Tensor, feed: Tensor, hidden: State, state: dict) -> tuple[Tensor, State]:
        """previous (b, e) embedded y_{t-1}, feed h~_{t-1} (b, H), hidden (layers, b, H) pair -> (h~_t, hidden)."""
        h, hidden = self.decoder(torch.cat([previous, feed], dim=-1)[:, None], hidden)  # (b, 1, H)
        c = self.attention(h[:, 0], state["memory"], mask=state["mask"])  # (b, H)
        return torch.tanh(self.combine(torch.cat([c, h[:, 0]], dim=-1))), hidden  # (b, H)

    def step_weights(self) -> LuongStepWeights:
        """The weights `luong_step` reads, transposed and concatenated once per sentence batch."""
        e, layers = self.config.embed_dim, self.decoder.all_weights  # per layer [W_ih, W_hh, b_ih, b_hh]
        w_ih, w_hh = layers[0][:2]
        first = torch.cat([w_ih[:, e:], w_hh], dim=1).t()  # (2H, 4H) on [h~_{t-1}; h]
        above = [torch.cat([w_ih_k, w_hh_k], dim=1).t() for w_ih_k, w_hh_k, _, _ in layers[1:]]  # (2H, 4H) each
        biases = tuple(b_ih_k + b_hh_k for _, _, b_ih_k, b_hh_k in layers[1:])  # (4H,) each
        return LuongStepWeights((first, *above), biases, self.combine.weight.t())

    def teacher_force(self, inputs: Tensor, targets: Tensor) -> Tensor:
        """inputs (b, s), targets (b, n) -> logits (b, n, o), each step fed the previous target (`path`'s loop)."""
        if self.path == "eager" or self.attention.tracing:
            return self.teacher_force_eager(inputs, targets)
        state = self.start(inputs)
        previous = self._previous(targets)  # (b, n, e)
        b, e = previous.shape[0], previous.shape[-1]
        rnn = self.decoder
        w_ih, _, b_ih, b_hh = rnn.all_weights[0]  # the first layer's
        x = F.linear(previous.transpose(0, 1), w_ih[:, :e], b_ih + b_hh)  # (n, b, 4H), all steps at once
        w = self.step_weights()
        compiling = self.path == "compiled" and torch.is_grad_enabled()
        memory = state["memory"]  # (b, j, H)
        keys, memory, mask = source_sized(
            compiling, (self.attention.project_keys(memory), 1), (memory, 1), (key_mask(state["mask"]), 3)
        )  # (b, j, H), (b, j, H), (b, 1, 1, j)
        hidden, cells = state["hidden"][0].unbind(1), state["hidden"][1].unbind(1)  # per layer (b, H)
        p = rnn.dropout if self.training else 0.0
        step = COMPILED_STEPS.get(luong_step, "luong.step") if compiling else luong_step
        feed, attentional = state["feed"], []
        for t, x_t in enumerate(x.unbind(0)):
            # nn.LSTM's draws between layers: a Bernoulli mask per layer output, the same calls in the same order
            drops = tuple(
                memory.new_empty(b, rnn.hidden_size).bernoulli_(1 - p).div_(1 - p)
                for _ in range(rnn.num_layers - 1)
                if p > 0
            )
            feed, hidden, cells = (luong_step if t == 0 else step)(
                x_t, feed, hidden, cells, keys, memory, mask, w, drops
            )
            attentional.append(feed)
        return self.out(self.drop(torch.stack(attentional, dim=1)))  # (b, n, o)

    def teacher_force_eager(self, inputs: Tensor, targets: Tensor) -> Tensor:
        """The readable loop (the oracle of the other paths): inputs (b, s), targets (b, n) -> logits (b, n, o)."""
        state = self.start(inputs)
        previous = self._previous(targets)  # (b, n, e)
        feed, hidden = state["feed"], layers_first(state["hidden"])
        attentional = []
        for y in previous.unbind(1):
            feed, hidden = self._advance(y, feed, hidden, state)  # (b, H)
            attentional.append(feed)
        return self.out(self.drop(torch.stack(attentional, dim=1)))  # (b, n, o)

    def step(self, tokens: Tensor, state: dict) -> tuple[Tensor, dict]:
        """tokens (b,) y_{t-1} -> (logits (b, o), the next state)."""
        previous = self.drop(self.tgt_embed(tokens))  # (b, e)
        feed, hidden = self._advance(previous, state["feed"], layers_first(state["hidden"]), state)  # (b, H)
        return self.out(self.drop(feed)), {**state, "hidden": batch_first(hidden), "feed": feed}  # (b, o)
