"""Model families by registry name, all behind one interface to the tasks.

A family is built from its own frozen `Config` and the task's `TaskSpec`, and maps a batch's
inputs to logits for its answers: `model(inputs, targets=None) -> (b, n, num_outputs)`.
Families that decode (`seq2seq = True`) use `targets` for teacher forcing while training and
decode greedily in eval mode; the others ignore `targets`.

A family trained by more than the task's loss (the recurrent attention model's REINFORCE term)
returns `(logits, aux_loss)` while training with targets; the loop adds `aux_loss` to the task's
loss (`split_output`). In eval mode every family returns logits only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from torch import Tensor, nn

from attnlab.config import Registry, build

PAD = 0  # padding token id in every token task


@dataclass(frozen=True)
class TaskSpec:
    """The shapes a model must fit: each task builds one from its config."""

    seq_len: int  # t, the input length of every batch (shorter examples are left-padded with PAD)
    answer_len: int  # n, answers are predicted at the last n input positions
    vocab_size: int = 0  # input token ids lie in [0, vocab_size); 0 for float inputs
    input_features: int = 0  # f > 0: inputs are floats (b, t, f) instead of token ids
    num_outputs: int = 0  # classes per answer (vocab_size for token answers); 1 for regression
    layout: tuple[int, ...] = ()  # flat input's structure: (m, s, q) = m sentences of s words, q question words; () plain
    eos_id: int | None = None  # answers of any length up to n end with this id, then PAD; None: always n answers
    image: tuple[int, ...] = ()  # (c, y, x): inputs are images (b, c, y, x) of floats; () otherwise

    @property
    def tokens(self) -> bool:
        """True when inputs and answers are token ids."""
        return self.input_features == 0 and not self.image

    @property
    def regression(self) -> bool:
        """True when each answer is one real number (num_outputs == 1)."""
        return self.num_outputs == 1


class TaskModel(nn.Module):
    """Base of every registered family."""

    Config: ClassVar[type]
    seq2seq: ClassVar[bool] = False  # True: decodes its answers, reads targets for teacher forcing

    def __init__(self, config, spec: TaskSpec):
        super().__init__()
        self.config = config
        self.spec = spec

    def forward(self, inputs: Tensor, targets: Tensor | None = None) -> Tensor:
        """inputs (b, t) token ids or (b, t, f) floats -> logits (b, n, num_outputs)."""
        raise NotImplementedError


def split_output(out: Tensor | tuple[Tensor, Tensor]) -> tuple[Tensor, Tensor | None]:
    """A family's output as (logits, aux_loss or None)."""
    if isinstance(out, tuple):
        logits, aux = out
        return logits, aux
    return out, None


MODELS: Registry[type[TaskModel]] = Registry("model")


def build_model(name: str, config: dict | None, spec: TaskSpec) -> TaskModel:
    """A family by registry name, its config values checked against its Config."""
    cls = MODELS.get(name)
    return cls(build(cls.Config, config, where="model"), spec)
