"""The adding problem (Hochreiter & Schmidhuber 1997, experiment 4; protocol of Le et al. 2015).

Each of the t steps carries two numbers: a value drawn from U[0, 1) (channel 0) and a marker
(channel 1). Exactly two markers are 1, one in the first half of the sequence and one in the
second half; the answer is the sum of the two marked values. A model must hold the first marked
value across up to t steps of distractors.

Baseline: always predicting 1 (the mean of the sum of two U[0, 1) draws) has MSE
Var(u1 + u2) = 2 / 12 = 1/6 ~ 0.167; a model must go below it to have learnt anything.
Hochreiter & Schmidhuber count an answer right when its absolute error is below 0.04.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor

from attnlab.spec import TaskSpec
from attnlab.tasks.base import TASKS, Batch, Task

TOLERANCE = 0.04  # |prediction - answer| below this counts as right (Hochreiter & Schmidhuber 1997)


@dataclass(frozen=True)
class AddingConfig:
    length: int = 50  # t, time steps per example (two of them marked)

    def __post_init__(self) -> None:
        if self.length < 2:
            raise ValueError(f"length must be >= 2, got {self.length}")


@TASKS.register("adding")
class Adding(Task):
    """Adding problem: regress the sum of the two marked values of a long real sequence."""

    Config = AddingConfig
    config: AddingConfig
    metric: ClassVar[str] = "mse"
    maximize: ClassVar[bool] = False

    @property
    def spec(self) -> TaskSpec:
        return TaskSpec(seq_len=self.config.length, answer_len=1, vocab_size=0, input_features=2, num_outputs=1)

    def sample(self, batch_size: int, generator: torch.Generator) -> Batch:
        t, half = self.config.length, self.config.length // 2
        values = torch.rand(batch_size, t, generator=generator)  # (b, t)
        first = torch.randint(0, half, (batch_size, 1), generator=generator)  # (b, 1)
        second = torch.randint(half, t, (batch_size, 1), generator=generator)  # (b, 1)
        marked = torch.cat([first, second], dim=1)  # (b, 2)
        markers = torch.zeros(batch_size, t).scatter(1, marked, 1.0)  # (b, t)
        inputs = torch.stack([values, markers], dim=-1)  # (b, t, 2)
        targets = values.gather(1, marked).sum(dim=1, keepdim=True)  # (b, 1)
        return Batch(inputs, targets)

    def loss(self, logits: Tensor, batch: Batch) -> Tensor:
        """logits (b, 1, 1) -> mean squared error against the sums (b, 1)."""
        return F.mse_loss(logits.squeeze(-1), batch.targets)

    def metrics(self, logits: Tensor, batch: Batch) -> dict[str, float]:
        """mse, and accuracy: the fraction of answers within TOLERANCE of the sum."""
        error = logits.squeeze(-1) - batch.targets  # (b, 1)
        return {
            "mse": error.pow(2).mean().item(),
            "accuracy": (error.abs() < TOLERANCE).float().mean().item(),
        }

    def token_names(self) -> list[str]:
        return []  # inputs are real numbers, not tokens

    def render(self, batch: Batch, index: int = 0, logits: Tensor | None = None) -> str:
        """The marked positions and values, their sum and, given logits (b, 1, 1), the prediction."""
        values, markers = batch.inputs[index].unbind(-1)  # (t,), (t,)
        where = markers.nonzero().flatten().tolist()
        shown = " + ".join(f"{values[p].item():.3f} (step {p})" for p in where)
        text = f"input: {len(values)} steps, marked {shown}\nanswer: {batch.targets[index, 0].item():.3f}"
        if logits is not None:
            text += f"\npredicted: {logits[index].flatten()[0].item():.3f}"
        return text
