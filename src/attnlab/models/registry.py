"""Model families by registry name, all behind one interface to the tasks.

A family is built from its mechanism's frozen `Config` and the task's `TaskSpec`, and maps a
batch's inputs to logits for its answers: `model(inputs, targets=None) -> (b, n, num_outputs)`.
Families that share a Config (rnn, gru, lstm) differ by the defaults of their registry entry,
`@MODELS.register(name, defaults={...})`; `build_model` and `MODELS.build_config` apply them.
Families that decode (`seq2seq = True`) use `targets` for teacher forcing while training and
decode greedily in eval mode; the others ignore `targets`.

A family trained by more than the task's loss (the recurrent attention model's REINFORCE term)
returns `(logits, aux_loss)` while training with targets; the loop adds `aux_loss` to the task's
loss (`split_output`). In eval mode every family returns logits only.
"""

from __future__ import annotations

from typing import Any, ClassVar

from torch import Tensor, nn

from attnlab.config import Registry
from attnlab.spec import TaskSpec


class TaskModel(nn.Module):
    """Base of every registered family."""

    Config: ClassVar[type]
    seq2seq: ClassVar[bool] = False  # True: decodes its answers, reads targets for teacher forcing
    guided: ClassVar[bool] = False  # True: has a guided start (`guide_loss`)

    def __init__(self, config: Any, spec: TaskSpec):
        super().__init__()
        self.config = config
        self.spec = spec

    def forward(self, inputs: Tensor, targets: Tensor | None = None) -> Tensor | tuple[Tensor, Tensor]:
        """inputs (b, t) token ids or (b, t, f) floats -> logits (b, n, num_outputs) (or, see above, a pair)."""
        raise NotImplementedError

    def guide_loss(self, inputs: Tensor, targets: Tensor, boxes: Tensor) -> Tensor:
        """The loss of a guided start's step (train.guide_steps), from a batch and its objects' boxes (b, [m,] 4);
        the families that have one (`guided`) override it."""
        raise NotImplementedError(f"{type(self).__name__} has no guided start")


def split_output(out: Tensor | tuple[Tensor, Tensor]) -> tuple[Tensor, Tensor | None]:
    """A family's output as (logits, aux_loss or None)."""
    if isinstance(out, tuple):
        logits, aux = out
        return logits, aux
    return out, None


MODELS: Registry[type[TaskModel]] = Registry("model")


def build_model(name: str, config: dict[str, Any] | None, spec: TaskSpec) -> TaskModel:
    """A family by registry name, its config values over the entry's defaults, checked against its Config."""
    return MODELS.get(name)(MODELS.build_config(name, config, where="model"), spec)
