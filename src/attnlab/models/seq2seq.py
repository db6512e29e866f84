"""Recurrent encoder-decoders: what every family shares, and the one without attention.

    "seq2seq"   no attention (Cho et al. 2014, "Learning Phrase Representations using RNN
                Encoder-Decoder"; Sutskever et al. 2014): the encoder's last state s_0 = h_T starts
                the decoder, and the fixed context c = h_T (top layer) enters every step and the output:
                    s_i = f([E y_{i-1}; c], s_{i-1})                 decoder (GRU or LSTM)
                    logits_i = W_o [s_i; c; E y_{i-1}]               out
    "bahdanau"  additive attention over a bidirectional GRU encoder: attnlab.models.bahdanau
    "luong"     global attention with input feeding over an LSTM encoder: attnlab.models.luong

Every family moves each source row's real tokens to the front (stable, so left- and right-padded
rows encode alike), runs a packed RNN over them (`RecurrentEncoder`) and masks PAD in the
attention: padding never changes the logits. The decoder's start symbol is bos_id = num_outputs,
an extra embedding row (`RecurrentSeq2Seq`).

Each family implements the incremental interface of attnlab.models.decoding (start / step /
teacher_force / source_order); teacher forcing runs the same recurrence and computes the output
layer once over all steps. Defaults are sized for about 1e5 parameters on a small task.

The attention families' fused teacher forcing (attnlab.core.fast) shares `COMPILED_STEPS` (each
fused step compiled once per process) and `source_sized` (the per-sentence tensors a step reads,
one graph for every source length).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from attnlab.core.fast import compiled
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


def batch_first(state: State) -> State:
    """nn.RNN's (layers, b, H) state (or LSTM pair of them) -> (b, layers, H)."""
    if isinstance(state, tuple):
        return tuple(s.transpose(0, 1) for s in state)  # each (b, layers, H)
    return state.transpose(0, 1)  # (b, layers, H)


def layers_first(state: State) -> State:
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
        return {"hidden": batch_first(final), "context": top}

    def _decode(self, previous: Tensor, state: dict) -> tuple[Tensor, dict]:
        """previous (b, n, e) embedded y_{i-1} -> logits (b, n, o); no attention, so one RNN call."""
        b, n, _ = previous.shape
        context = state["context"][:, None].expand(b, n, -1)  # (b, n, H)
        x = torch.cat([previous, context], dim=-1)  # (b, n, e + H)
        states, hidden = self.decoder(x, layers_first(state["hidden"]))  # (b, n, H)
        logits = self.out(self.drop(torch.cat([states, context, previous], dim=-1)))  # (b, n, o)
        return logits, {"hidden": batch_first(hidden), "context": state["context"]}

    def teacher_force(self, inputs: Tensor, targets: Tensor) -> Tensor:
        """inputs (b, s), targets (b, n) -> logits (b, n, o), each step fed the previous target."""
        return self._decode(self._previous(targets), self.start(inputs))[0]  # (b, n, o)

    def step(self, tokens: Tensor, state: dict) -> tuple[Tensor, dict]:
        """tokens (b,) y_{i-1} -> (logits (b, o), the next state)."""
        logits, state = self._decode(self.drop(self.tgt_embed(tokens))[:, None], state)  # (b, 1, o)
        return logits[:, 0], state  # (b, o)


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


def source_sized(compiling: bool, *tensors: tuple[Tensor, int]) -> list[Tensor]:
    """The per-sentence tensors a step reads, each with its source-length dim: contiguous (packed and
    unpacked encodings give one stride pattern) and, when compiling, that dim marked dynamic, so one
    graph serves every source length."""
    out = [t.contiguous() for t, _ in tensors]
    if compiling:
        import torch._dynamo  # imported here: slow to import, and only the compiled path needs it

        for t, (_, dim) in zip(out, tensors):
            torch._dynamo.maybe_mark_dynamic(t, dim)
    return out
