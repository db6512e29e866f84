"""Baselines without attention, and the two pieces every family shares: the input and the answers.

    InputEmbedding  token ids (b, t) -> nn.Embedding (PAD row fixed at zero); floats (b, t, f) -> nn.Linear
    AnswerHead      features (b, t, c) -> a Linear at the last n positions -> logits (b, n, o)

The baselines are what attention has to beat on the same tasks:

    "mlp"     a multilayer perceptron over the whole flattened window (Rumelhart et al. 1986): every
              position is a separate feature, nothing is shared between positions
    "cnn"     1-D convolutions with residual connections (LeCun et al. 1989; He et al. 2016, "Deep
              Residual Learning"); each layer adds kernel_size - 1 positions to the receptive field
    "rnn"     Elman's simple recurrent network, h_t = tanh(W x_t + U h_{t-1} + b) (Elman 1990)
    "gru"     gated recurrent units (Cho et al. 2014)
    "lstm"    long short-term memory (Hochreiter & Schmidhuber 1997, forget gate of Gers et al. 2000)
    "bilstm"  an LSTM in each direction, concatenated (Schuster & Paliwal 1997; Graves & Schmidhuber 2005)

Defaults are sized for about 1e5 parameters on a small task (t = 21, n = 10, vocabulary 12), like
the transformer families in attnlab.models.sequence, so that families compare at a similar size.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from attnlab.models.registry import MODELS, TaskModel
from attnlab.spec import PAD, TaskSpec


def check_at_least(config: Any, name: str, low: int) -> None:
    """A one-line ValueError naming the field when config.<name> < low."""
    value = getattr(config, name)
    if value < low:
        raise ValueError(f"{type(config).__name__}.{name}: must be >= {low}; got {value}")


def check_dropout(config: Any, name: str = "dropout") -> None:
    """A one-line ValueError naming the field when a dropout rate is outside [0, 1)."""
    value = getattr(config, name)
    if not 0.0 <= value < 1.0:
        raise ValueError(f"{type(config).__name__}.{name}: must be in [0, 1); got {value}")


class InputEmbedding(nn.Module):
    """The one input layer of every family: token ids or float features -> (b, t, d).

    Token ids go through nn.Embedding with padding_idx=PAD, so left padding enters every model
    as zero vectors (what a convolution's zero padding also feeds it). Float inputs go through a
    Linear applied at each position.

    Args:
        spec: the task's shapes.
        embed_dim: d, the width of the output.
    """

    def __init__(self, spec: TaskSpec, embed_dim: int):
        super().__init__()
        self.tokens = spec.tokens
        if spec.tokens:
            if spec.vocab_size < 2:
                raise ValueError(f"TaskSpec.vocab_size: token inputs need >= 2 ids (PAD, one); got {spec.vocab_size}")
            self.proj: nn.Module = nn.Embedding(spec.vocab_size, embed_dim, padding_idx=PAD)
        else:
            self.proj = nn.Linear(spec.input_features, embed_dim)
        self.input_features = spec.input_features

    def forward(self, inputs: Tensor) -> Tensor:
        """inputs (b, t) integer ids, or (b, t, f) floats -> (b, t, d)."""
        if self.tokens and (inputs.dim() != 2 or inputs.is_floating_point() or inputs.dtype == torch.bool):
            raise ValueError(
                f"InputEmbedding: token inputs must be (b, t) integer ids; got {inputs.dtype} {tuple(inputs.shape)}"
            )
        if not self.tokens and (
            inputs.dim() != 3 or inputs.shape[-1] != self.input_features or not inputs.is_floating_point()
        ):
            raise ValueError(
                f"InputEmbedding: float inputs must be (b, t, f={self.input_features}); got {inputs.dtype} "
                f"{tuple(inputs.shape)}"
            )
        return self.proj(inputs)  # (b, t, d)


def check_answers(spec: TaskSpec) -> None:
    """One-line ValueErrors for answers that cannot fit: n outside 1..t, or no outputs."""
    if not 1 <= spec.answer_len <= spec.seq_len:
        raise ValueError(f"TaskSpec.answer_len: must be in 1..seq_len={spec.seq_len}; got {spec.answer_len}")
    if spec.num_outputs < 1:
        raise ValueError(f"TaskSpec.num_outputs: must be >= 1; got {spec.num_outputs}")


class AnswerHead(nn.Module):
    """The one output step of every tagging family: a Linear at each of the last n positions.

    Args:
        spec: the task's shapes (answer_len n, num_outputs o).
        in_dim: c, the width of the features it reads.
    """

    def __init__(self, spec: TaskSpec, in_dim: int):
        super().__init__()
        check_answers(spec)
        self.answer_len = spec.answer_len
        self.linear = nn.Linear(in_dim, spec.num_outputs)

    def forward(self, features: Tensor) -> Tensor:
        """features (b, t, c), t >= n -> logits (b, n, o)."""
        if features.shape[1] < self.answer_len:
            raise ValueError(f"AnswerHead: {features.shape[1]} positions cannot hold {self.answer_len} answers")
        return self.linear(features[:, -self.answer_len :])  # (b, n, o)


@dataclass(frozen=True)
class MLPConfig:
    embed_dim: int = 32  # e, width of each position's embedding before flattening (b, t * e)
    hidden_dim: int = 128  # width of every hidden layer
    num_layers: int = 2  # hidden layers; 0 gives a linear model of the flattened window
    dropout: float = 0.0  # after each hidden layer's GELU

    def __post_init__(self) -> None:
        check_at_least(self, "embed_dim", 1)
        check_at_least(self, "hidden_dim", 1)
        check_at_least(self, "num_layers", 0)
        check_dropout(self)


@MODELS.register("mlp")
class MLP(TaskModel):
    """Feed-forward network over the flattened window: no weights shared between positions."""

    Config = MLPConfig

    def __init__(self, config: MLPConfig, spec: TaskSpec):
        super().__init__(config, spec)
        check_answers(spec)
        self.embed = InputEmbedding(spec, config.embed_dim)
        layers: list[nn.Module] = []
        width = spec.seq_len * config.embed_dim
        for _ in range(config.num_layers):
            layers += [nn.Linear(width, config.hidden_dim), nn.GELU(), nn.Dropout(config.dropout)]
            width = config.hidden_dim
        self.hidden = nn.Sequential(*layers)
        self.out = nn.Linear(width, spec.answer_len * spec.num_outputs)

    def forward(self, inputs: Tensor, targets: Tensor | None = None) -> Tensor:
        """inputs (b, t) ids or (b, t, f) floats, t == spec.seq_len -> logits (b, n, o)."""
        b, t = inputs.shape[:2]
        if t != self.spec.seq_len:
            raise ValueError(f"mlp: inputs have {t} positions; this model was built for seq_len {self.spec.seq_len}")
        x = self.embed(inputs).reshape(b, -1)  # (b, t * e)
        x = self.out(self.hidden(x))  # (b, n * o)
        return x.view(b, self.spec.answer_len, self.spec.num_outputs)  # (b, n, o)


@dataclass(frozen=True)
class CNNConfig:
    channels: int = 64  # c, embedding width and the channels of every convolution
    kernel_size: int = 5  # k, odd, so that the padding centres each window on its position
    num_layers: int = 5  # convolutions; the receptive field is 1 + num_layers * (k - 1)
    dropout: float = 0.0  # on each convolution's output before the residual sum

    def __post_init__(self) -> None:
        check_at_least(self, "channels", 1)
        check_at_least(self, "kernel_size", 1)
        if self.kernel_size % 2 == 0:
            raise ValueError(f"CNNConfig.kernel_size: must be odd to centre the window; got {self.kernel_size}")
        check_at_least(self, "num_layers", 1)
        check_dropout(self)


@MODELS.register("cnn")
class CNN(TaskModel):
    """Residual 1-D convolutions (not dilated), answers read at the last n positions."""

    Config = CNNConfig

    def __init__(self, config: CNNConfig, spec: TaskSpec):
        super().__init__(config, spec)
        c, k = config.channels, config.kernel_size
        self.embed = InputEmbedding(spec, c)
        self.convs = nn.ModuleList(nn.Conv1d(c, c, k, padding=k // 2) for _ in range(config.num_layers))
        self.drop = nn.Dropout(config.dropout)
        self.head = AnswerHead(spec, c)

    @property
    def receptive_field(self) -> int:
        """Positions that can reach one output: (k - 1) / 2 * num_layers on each side, plus itself."""
        return 1 + self.config.num_layers * (self.config.kernel_size - 1)

    def forward(self, inputs: Tensor, targets: Tensor | None = None) -> Tensor:
        """inputs (b, t) ids or (b, t, f) floats -> logits (b, n, o)."""
        x = self.embed(inputs).transpose(1, 2)  # (b, c, t)
        for conv in self.convs:
            x = x + self.drop(F.gelu(conv(x)))  # (b, c, t)
        return self.head(x.transpose(1, 2))  # (b, t, c) -> (b, n, o)


@dataclass(frozen=True)
class RecurrentConfig:
    embed_dim: int = 64  # e, input embedding width
    hidden_dim: int = 128  # state width (h, and the cell c of an LSTM; per direction for bilstm)
    num_layers: int = 2  # stacked recurrent layers
    dropout: float = 0.0  # between stacked layers (unused with one layer)

    def __post_init__(self) -> None:
        check_at_least(self, "embed_dim", 1)
        check_at_least(self, "hidden_dim", 1)
        check_at_least(self, "num_layers", 1)
        check_dropout(self)


class Recurrent(TaskModel):
    """A recurrent stack over the embedded inputs, answers read at the last n positions."""

    Config: ClassVar[type] = RecurrentConfig
    cell: ClassVar[type[nn.RNN] | type[nn.GRU] | type[nn.LSTM]] = nn.RNN
    bidirectional: ClassVar[bool] = False

    def __init__(self, config: RecurrentConfig, spec: TaskSpec):
        super().__init__(config, spec)
        self.embed = InputEmbedding(spec, config.embed_dim)
        self.rnn = self.cell(
            config.embed_dim,
            config.hidden_dim,
            num_layers=config.num_layers,
            batch_first=True,
            dropout=config.dropout if config.num_layers > 1 else 0.0,  # nn.RNNBase warns otherwise
            bidirectional=self.bidirectional,
        )
        self.head = AnswerHead(spec, config.hidden_dim * (2 if self.bidirectional else 1))

    def forward(self, inputs: Tensor, targets: Tensor | None = None) -> Tensor:
        """inputs (b, t) ids or (b, t, f) floats -> logits (b, n, o)."""
        states, _ = self.rnn(self.embed(inputs))  # (b, t, hidden_dim * directions)
        return self.head(states)  # (b, n, o)


# hidden_dim per cell type: about 1e5 parameters each on a small task (the Elman RNN's cell is the
# smallest, so its state is the widest; bilstm's is per direction, the head reads 2 * hidden_dim)
@MODELS.register("rnn", defaults={"hidden_dim": 160})
class RNN(Recurrent):
    """Elman RNN (tanh), unidirectional, answers read at the last n positions."""

    cell = nn.RNN


@MODELS.register("gru", defaults={"hidden_dim": 96})
class GRU(Recurrent):
    """GRU, unidirectional, answers read at the last n positions."""

    cell = nn.GRU


@MODELS.register("lstm", defaults={"hidden_dim": 80})
class LSTM(Recurrent):
    """LSTM, unidirectional, answers read at the last n positions."""

    cell = nn.LSTM


@MODELS.register("bilstm", defaults={"hidden_dim": 48})
class BiLSTM(Recurrent):
    """Bidirectional LSTM, answers read from both directions at the last n positions."""

    cell = nn.LSTM
    bidirectional = True
