"""Recurrent encoder-decoders, with and without attention: composition only, no new maths.

    "seq2seq"   no attention (Cho et al. 2014, "Learning Phrase Representations using RNN
                Encoder-Decoder"; Sutskever et al. 2014): the encoder's last state s_0 = h_T starts
                the decoder, and the fixed context c = h_T (top layer) enters every step and the output:
                    s_i = f([E y_{i-1}; c], s_{i-1})                 decoder (GRU or LSTM)
                    logits_i = W_o [s_i; c; E y_{i-1}]               out
    "bahdanau"  Bahdanau et al. 2015, "Neural Machine Translation by Jointly Learning to Align and
                Translate": a bidirectional GRU encoder, annotations h_j = [h_fwd_j; h_bwd_j]:
                    s_0 = tanh(W_s h_bwd_1)                          init
                    c_i = sum_j alpha_ij h_j, e_ij = a(s_{i-1}, h_j) attention (AdditiveAttention;
                                                                     U_a h_j projected once per sentence)
                    s_i = GRU([E y_{i-1}; c_i], s_{i-1})             cell
                    logits_i = W_o [s_i; c_i; E y_{i-1}]             out
    "luong"     Luong et al. 2015, "Effective Approaches to Attention-based Neural Machine
                Translation", global attention with input feeding (§3.1, §3.3):
                    h_t = LSTM([E y_{t-1}; h~_{t-1}], h_{t-1})      decoder, h~_0 = 0
                    c_t = sum_s a_t(s) hs_s, score "dot"/"general"   attention (LuongAttention)
                    h~_t = tanh(W_c [c_t; h_t])                      combine
                    logits_t = W_s h~_t                              out

All three move each source row's real tokens to the front (stable, so left- and right-padded
rows encode alike), run a packed RNN over them and mask PAD in the attention: padding never
changes the logits. The decoder's start symbol is bos_id = num_outputs, an extra embedding row.

Each family implements the incremental interface of attnlab.models.decoding (start / step /
teacher_force / source_order); teacher forcing runs the same recurrence and computes the output
layer once over all steps. Defaults are sized for about 1e5 parameters on a small task.

Paths of teacher forcing in "bahdanau" and "luong" (attnlab.core.fast): "eager" is the loop as
written (`teacher_force_eager`); "fast" hoists out of the loop what does not depend on the
recurrence: the target embeddings' share of the first layer's input gates for all steps (one
matmul), the keys' projection, the lifted mask; each step (`bahdanau_step`, `luong_step`) is then a
few large ops: one matmul of the previous state for everything that reads it (Bahdanau's W_a s and
the GRU's hidden gates), one of [input; h] per LSTM layer, the context by `additive_context` or
`dot_context`, and the cell's update (`gru_update`, `lstm_update`, nn.GRUCell's and nn.LSTMCell's
maths on gates computed outside). "compiled" runs steps 2..n of the same function through
torch.compile, once per process, while autograd records (a call without a graph runs the fused
step: it would compile a graph of its own). Dropout draws the same numbers in the same order on
every path. Incremental decoding (`step`) and traced calls run the eager modules.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from attnlab.attention.additive import (
    LUONG_METHODS,
    AdditiveAttention,
    LuongAttention,
    additive_context,
    dot_context,
)
from attnlab.core import key_mask
from attnlab.core.fast import FastPath, compiled
from attnlab.models.baselines import InputEmbedding, check_at_least, check_dropout
from attnlab.models.decoding import greedy_logits
from attnlab.models.registry import MODELS, TaskModel
from attnlab.models.sequence import require_token_answers
from attnlab.spec import PAD, TaskSpec

CELLS: dict[str, type[nn.GRU] | type[nn.LSTM]] = {"gru": nn.GRU, "lstm": nn.LSTM}
State = Tensor | tuple[Tensor, ...]  # a GRU's hidden state, or an LSTM's (h, c)


def front_order(inputs: Tensor) -> Tensor:
    """inputs (b, s) ids -> (b, s) the input column of each position once real tokens come first."""
    return torch.argsort((inputs == PAD).to(torch.uint8), dim=1, stable=True)  # (b, s)


class RecurrentEncoder(nn.Module):
    """Source ids -> the states of a packed GRU/LSTM over each row's real tokens, moved to the front.

    Args:
        spec: the task's shapes (token inputs).
        cell: "gru" or "lstm".
        embed_dim, hidden_dim, num_layers, dropout: as nn.GRU / nn.LSTM (dropout also on the embeddings).
        bidirectional: one RNN per direction, states concatenated.
    """

    def __init__(
        self,
        spec: TaskSpec,
        cell: str,
        embed_dim: int,
        hidden_dim: int,
        num_layers: int,
        dropout: float,
        bidirectional: bool = False,
    ):
        super().__init__()
        self.embed = InputEmbedding(spec, embed_dim)
        self.drop = nn.Dropout(dropout)
        self.rnn = CELLS[cell](
            embed_dim,
            hidden_dim,
            num_layers=num_layers,
            batch_first=True,
            dropout=dropout if num_layers > 1 else 0.0,
            bidirectional=bidirectional,
        )

    def forward(self, inputs: Tensor) -> tuple[Tensor, Tensor, Tensor | tuple[Tensor, Tensor]]:
        """inputs (b, s) ids -> (states (b, j, dirs * H), mask (b, j) True = real, final state).

        j is the longest row's real length; position p of row r is input column front_order[r, p].
        The final state is nn.GRU's h_n (layers * dirs, b, H), or nn.LSTM's (h_n, c_n).
        """
        lengths = (inputs != PAD).sum(1)  # (b,)
        j = max(int(lengths.max()), 1)
        ids = inputs.gather(1, front_order(inputs))[:, :j]  # (b, j)
        x = self.drop(self.embed(ids))  # (b, j, e)
        if bool((lengths == j).all()):
            states, final = self.rnn(x)  # (b, j, dirs * H)
        else:
            packed = pack_padded_sequence(x, lengths.clamp(min=1).cpu(), batch_first=True, enforce_sorted=False)
            states, final = self.rnn(packed)
            states, _ = pad_packed_sequence(states, batch_first=True, total_length=j)  # (b, j, dirs * H)
        return states, ids != PAD, final


@dataclass(frozen=True)
class RecurrentSeq2SeqConfig:
    embed_dim: int = 64  # e, source and target embedding width
    hidden_dim: int = 64  # H, the decoder's state width and the encoder's (per direction in bahdanau; H/2 each in a bidirectional luong)
    num_layers: int = 1  # stacked recurrent layers of the encoder, and of the decoder (bahdanau's is one GRU cell)
    dropout: float = 0.0  # on embeddings, between stacked layers and before the output layer
    output_dim: int = 0  # seq2seq, bahdanau: 0 = one Linear to the vocabulary; > 0 = a maxout layer this wide first

    def __post_init__(self) -> None:
        for name in ("embed_dim", "hidden_dim", "num_layers"):
            check_at_least(self, name, 1)
        check_at_least(self, "output_dim", 0)
        check_dropout(self)


class DeepOutput(nn.Module):
    """The output layer over [s_i; c_i; E y_{i-1}] (Bahdanau et al. 2015, appendix A.2.2).

    With width l > 0: t_i = max over pairs of (W [s; c; E y] + b), l units, then W_o t_i, the
    paper's deep output with maxout, which keeps the large vocabulary product to l columns;
    with l = 0 one Linear maps the features to the vocabulary.
    """

    def __init__(self, in_dim: int, width: int, vocab: int):
        super().__init__()
        self.width = width
        self.maxout = nn.Linear(in_dim, 2 * width) if width else None
        self.vocab = nn.Linear(width or in_dim, vocab)

    def forward(self, features: Tensor) -> Tensor:
        """features (..., in_dim) -> logits (..., vocab)."""
        if self.maxout is not None:
            pieces = self.maxout(features).unflatten(-1, (self.width, 2))  # (..., l, 2)
            features = pieces.amax(-1)  # (..., l)
        return self.vocab(features)


class RecurrentSeq2Seq(TaskModel):
    """Shared by the recurrent encoder-decoders: the target embedding, modes and the source order."""

    Config: ClassVar[type] = RecurrentSeq2SeqConfig
    seq2seq: ClassVar[bool] = True
    name: ClassVar[str] = ""

    def __init__(self, config: RecurrentSeq2SeqConfig, spec: TaskSpec):
        super().__init__(config, spec)
        require_token_answers(self.name, spec, same_vocab=False)
        self.bos_id = spec.num_outputs  # one id past the answers: never an answer itself
        self.tgt_embed = nn.Embedding(spec.num_outputs + 1, config.embed_dim)
        self.drop = nn.Dropout(config.dropout)

    def forward(self, inputs: Tensor, targets: Tensor | None = None) -> Tensor:
        """inputs (b, s) ids, targets (b, n) ids (read only while training) -> logits (b, n, o)."""
        if self.training and targets is not None:
            return self.teacher_force(inputs, targets)
        return greedy_logits(self, inputs, self.spec.answer_len)  # (b, n, o)

    def source_order(self, inputs: Tensor) -> Tensor:
        """(b, s): the input column of each encoded position (real tokens first)."""
        return front_order(inputs)

    def _previous(self, targets: Tensor) -> Tensor:
        """The decoder's inputs y_{i-1}, embedded: targets (b, n) -> (b, n, e), BOS first."""
        bos = targets.new_full((targets.shape[0], 1), self.bos_id)  # (b, 1)
        return self.drop(self.tgt_embed(torch.cat([bos, targets[:, :-1]], dim=1)))  # (b, n, e)

    def teacher_force(self, inputs: Tensor, targets: Tensor) -> Tensor:
        raise NotImplementedError

    def start(self, inputs: Tensor) -> dict:
        raise NotImplementedError

    def step(self, tokens: Tensor, state: dict) -> tuple[Tensor, dict]:
        raise NotImplementedError


def _batch_first(state: State) -> State:
    """nn.RNN's (layers, b, H) state (or LSTM pair of them) -> (b, layers, H)."""
    if isinstance(state, tuple):
        return tuple(s.transpose(0, 1) for s in state)  # each (b, layers, H)
    return state.transpose(0, 1)  # (b, layers, H)


def _layers_first(state: State) -> State:
    """(b, layers, H) (or a pair) -> nn.RNN's (layers, b, H)."""
    if isinstance(state, tuple):
        return tuple(s.transpose(0, 1).contiguous() for s in state)  # each (layers, b, H)
    return state.transpose(0, 1).contiguous()  # (layers, b, H)


@dataclass(frozen=True)
class Seq2SeqConfig(RecurrentSeq2SeqConfig):
    cell: str = "gru"  # "gru" or "lstm", in encoder and decoder

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.cell not in CELLS:
            raise ValueError(f"Seq2SeqConfig.cell: {self.cell!r} is not one of {', '.join(CELLS)}")


@MODELS.register("seq2seq", defaults={"hidden_dim": 80})
class Seq2Seq(RecurrentSeq2Seq):
    """RNN encoder-decoder without attention: one fixed context vector for the whole output.

    The encoder's state starts the decoder, so both are hidden_dim wide.
    """

    Config = Seq2SeqConfig
    name = "seq2seq"

    def __init__(self, config: Seq2SeqConfig, spec: TaskSpec):
        super().__init__(config, spec)
        e, h, layers = config.embed_dim, config.hidden_dim, config.num_layers
        self.encoder = RecurrentEncoder(spec, config.cell, e, h, layers, config.dropout)
        self.decoder = CELLS[config.cell](
            e + h, h, num_layers=layers, batch_first=True, dropout=config.dropout if layers > 1 else 0.0
        )
        self.out = DeepOutput(h + h + e, config.output_dim, spec.num_outputs)

    def start(self, inputs: Tensor) -> dict:
        """Encode once: {"hidden": the decoder state, batch first, "context": c (b, H)}."""
        _, _, final = self.encoder(inputs)  # (layers, b, H) or a pair
        top = final[0][-1] if isinstance(final, tuple) else final[-1]  # (b, H)
        return {"hidden": _batch_first(final), "context": top}

    def _decode(self, previous: Tensor, state: dict) -> tuple[Tensor, dict]:
        """previous (b, n, e) embedded y_{i-1} -> logits (b, n, o); no attention, so one RNN call."""
        b, n, _ = previous.shape
        context = state["context"][:, None].expand(b, n, -1)  # (b, n, H)
        x = torch.cat([previous, context], dim=-1)  # (b, n, e + H)
        states, hidden = self.decoder(x, _layers_first(state["hidden"]))  # (b, n, H)
        logits = self.out(self.drop(torch.cat([states, context, previous], dim=-1)))  # (b, n, o)
        return logits, {"hidden": _batch_first(hidden), "context": state["context"]}

    def teacher_force(self, inputs: Tensor, targets: Tensor) -> Tensor:
        """inputs (b, s), targets (b, n) -> logits (b, n, o), each step fed the previous target."""
        return self._decode(self._previous(targets), self.start(inputs))[0]  # (b, n, o)

    def step(self, tokens: Tensor, state: dict) -> tuple[Tensor, dict]:
        """tokens (b,) y_{i-1} -> (logits (b, o), the next state)."""
        logits, state = self._decode(self.drop(self.tgt_embed(tokens))[:, None], state)  # (b, 1, o)
        return logits[:, 0], state  # (b, o)


def gru_update(input_gates: Tensor, hidden_gates: Tensor, h: Tensor) -> Tensor:
    """nn.GRUCell's update on gates computed outside.

    r = sigma(x_r + h_r), z = sigma(x_z + h_z), n = tanh(x_n + r * h_n), h' = (1 - z) n + z h.

    Args:
        input_gates: (b, 3H) W_i x + b_i, in the order r, z, n.
        hidden_gates: (b, 3H) W_h h + b_h, same order.
        h: (b, H) the previous state.
    Returns:
        (b, H) h'.
    """
    size = h.shape[1]
    # split, not slices: its backward is one cat, a slice's a zero-filled copy each
    x_rz, x_n = input_gates.split([2 * size, size], dim=1)  # (b, 2H), (b, H)
    h_rz, h_n = hidden_gates.split([2 * size, size], dim=1)  # (b, 2H), (b, H)
    r, z = torch.sigmoid(x_rz + h_rz).chunk(2, dim=1)  # (b, H) each
    n = torch.tanh(x_n + r * h_n)  # (b, H)
    return n + z * (h - n)  # (b, H)


def lstm_update(gates: Tensor, cell: Tensor) -> tuple[Tensor, Tensor]:
    """nn.LSTMCell's update on gates computed outside.

    c' = sigma(f) c + sigma(i) tanh(g), h' = sigma(o) tanh(c').

    Args:
        gates: (b, 4H) W_i x + W_h h + biases, in the order i, f, g, o.
        cell: (b, H) c.
    Returns:
        (h', c'), each (b, H).
    """
    i, f, g, o = gates.chunk(4, dim=1)  # (b, H) each
    cell = torch.sigmoid(f) * cell + torch.sigmoid(i) * torch.tanh(g)  # (b, H)
    return torch.sigmoid(o) * torch.tanh(cell), cell


Step = Callable[..., Any]


class _CompiledSteps:
    """Each fused step through torch.compile, made on first use: once per process, shared by every model."""

    def __init__(self) -> None:
        self.made: dict[str, Step] = {}

    def get(self, fn: Step, name: str) -> Step:
        if name not in self.made:
            self.made[name] = compiled(fn, name)
        return self.made[name]


COMPILED_STEPS = _CompiledSteps()


def _source_sized(compiling: bool, *tensors: tuple[Tensor, int]) -> list[Tensor]:
    """The per-sentence tensors a step reads, each with its source-length dim: contiguous (packed and
    unpacked encodings give one stride pattern) and, when compiling, that dim marked dynamic, so one
    graph serves every source length."""
    out = [t.contiguous() for t, _ in tensors]
    if compiling:
        import torch._dynamo  # imported here: slow to import, and only the compiled path needs it

        for t, (_, dim) in zip(out, tensors):
            torch._dynamo.maybe_mark_dynamic(t, dim)
    return out


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

    def teacher_force(self, inputs: Tensor, targets: Tensor) -> Tensor:
        """inputs (b, s), targets (b, n) -> logits (b, n, o), each step fed the previous target (`path`'s loop)."""
        if self.path == "eager" or self.attention.tracing:
            return self.teacher_force_eager(inputs, targets)
        state = self.start(inputs)
        previous = self._previous(targets)  # (b, n, e)
        e = previous.shape[-1]
        cell, attention = self.cell, self.attention
        x = F.linear(previous.transpose(0, 1), cell.weight_ih[:, :e], cell.bias_ih)  # (n, b, 3H), all steps at once
        w = BahdanauStepWeights(
            torch.cat([attention.query_proj.weight, cell.weight_hh]).t(),  # (H, a + 3H)
            torch.cat([cell.bias_hh.new_zeros(attention.attn_dim), cell.bias_hh]),  # (a + 3H,)
            cell.weight_ih[:, e:].t(),  # (2H, 3H)
            attention.v,
        )
        compiling = self.path == "compiled" and torch.is_grad_enabled()
        keys, annotations, mask = _source_sized(
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
        return {"hidden": _batch_first((h, c)), "feed": feed, "memory": memory, "mask": mask}

    def _advance(self, previous: Tensor, feed: Tensor, hidden: State, state: dict) -> tuple[Tensor, State]:
        """previous (b, e) embedded y_{t-1}, feed h~_{t-1} (b, H), hidden (layers, b, H) pair -> (h~_t, hidden)."""
        h, hidden = self.decoder(torch.cat([previous, feed], dim=-1)[:, None], hidden)  # (b, 1, H)
        c = self.attention(h[:, 0], state["memory"], mask=state["mask"])  # (b, H)
        return torch.tanh(self.combine(torch.cat([c, h[:, 0]], dim=-1))), hidden  # (b, H)

    def teacher_force(self, inputs: Tensor, targets: Tensor) -> Tensor:
        """inputs (b, s), targets (b, n) -> logits (b, n, o), each step fed the previous target (`path`'s loop)."""
        if self.path == "eager" or self.attention.tracing:
            return self.teacher_force_eager(inputs, targets)
        state = self.start(inputs)
        previous = self._previous(targets)  # (b, n, e)
        b, e = previous.shape[0], previous.shape[-1]
        rnn = self.decoder
        layers = [
            [getattr(rnn, f"{name}_l{k}") for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]
            for k in range(rnn.num_layers)
        ]
        w_ih, w_hh, b_ih, b_hh = layers[0]
        x = F.linear(previous.transpose(0, 1), w_ih[:, :e], b_ih + b_hh)  # (n, b, 4H), all steps at once
        first = torch.cat([w_ih[:, e:], w_hh], dim=1).t()  # (2H, 4H) on [h~_{t-1}; h]
        above = [torch.cat([w_ih_k, w_hh_k], dim=1).t() for w_ih_k, w_hh_k, _, _ in layers[1:]]  # (2H, 4H) each
        biases = tuple(b_ih_k + b_hh_k for _, _, b_ih_k, b_hh_k in layers[1:])  # (4H,) each
        w = LuongStepWeights((first, *above), biases, self.combine.weight.t())
        compiling = self.path == "compiled" and torch.is_grad_enabled()
        memory = state["memory"]  # (b, j, H)
        keys, memory, mask = _source_sized(
            compiling, (self.attention.project_keys(memory), 1), (memory, 1), (key_mask(state["mask"]), 3)
        )  # (b, j, H), (b, j, H), (b, 1, 1, j)
        hidden, cells = state["hidden"][0].unbind(1), state["hidden"][1].unbind(1)  # per layer (b, H)
        p = rnn.dropout if self.training else 0.0
        step = COMPILED_STEPS.get(luong_step, "luong.step") if compiling else luong_step
        feed, attentional = state["feed"], []
        for t, x_t in enumerate(x.unbind(0)):
            # nn.LSTM's draws between layers: a Bernoulli mask per layer output, the same calls in the same order
            drops = tuple(
                memory.new_empty(b, rnn.hidden_size).bernoulli_(1 - p).div_(1 - p) for _ in layers[1:] if p > 0
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
        feed, hidden = state["feed"], _layers_first(state["hidden"])
        attentional = []
        for y in previous.unbind(1):
            feed, hidden = self._advance(y, feed, hidden, state)  # (b, H)
            attentional.append(feed)
        return self.out(self.drop(torch.stack(attentional, dim=1)))  # (b, n, o)

    def step(self, tokens: Tensor, state: dict) -> tuple[Tensor, dict]:
        """tokens (b,) y_{t-1} -> (logits (b, o), the next state)."""
        previous = self.drop(self.tgt_embed(tokens))  # (b, e)
        feed, hidden = self._advance(previous, state["feed"], _layers_first(state["hidden"]), state)  # (b, H)
        return self.out(self.drop(feed)), {**state, "hidden": _batch_first(hidden), "feed": feed}  # (b, o)
