"""What every task gives the models and the training loop.

Every task is framed the same way so that every model family trains on it through one loop:
a batch of input sequences (b, t), and answers for the last n positions of each sequence (b, n).
Token tasks share one vocabulary between inputs and answers (id 0 is padding, shorter examples
are padded on the left), so a decoder-only LM can read `inputs ++ answers` and an encoder-decoder
can decode the answers from the inputs, while taggers predict them at the last n positions.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor

from attnlab.config import Registry
from attnlab.spec import PAD, TaskSpec


@dataclass
class Batch:
    """Inputs and answers of b examples."""

    inputs: Tensor  # (b, t) long token ids, or (b, t, f) float
    targets: Tensor  # (b, n) long answer ids, or (b, n) float for regression
    ids: Tensor | None = None  # (b,) long: which of the task's examples these are, where its metrics need more
    # than the targets (a captioning task scores a caption against every reference of its image); else None
    boxes: Tensor | None = None  # (b, 4) or (b, m, 4) long (top, left, height, width) of each image's object(s),
    # where an image task knows them (a guided start looks there: attnlab.glimpse.guide); else None

    def __len__(self) -> int:
        return self.inputs.shape[0]

    def _each(self, change: Callable[[Tensor], Tensor]) -> Batch:
        """The batch with change applied to every tensor it holds."""
        ids, boxes = (None if t is None else change(t) for t in (self.ids, self.boxes))
        return Batch(change(self.inputs), change(self.targets), ids, boxes)

    def to(self, device: torch.device | str) -> Batch:
        return self._each(lambda t: t.to(device))

    def rows(self, index: slice | Tensor) -> Batch:
        """The examples at index (a slice or a long tensor of row numbers)."""
        return self._each(lambda t: t[index])

    @staticmethod
    def cat(batches: list[Batch]) -> Batch:
        """The batches one after another; ids and boxes only when every batch has them."""

        def joined(field: str) -> Tensor | None:
            parts = [getattr(b, field) for b in batches if getattr(b, field) is not None]
            return torch.cat(parts) if len(parts) == len(batches) else None

        inputs, targets = torch.cat([b.inputs for b in batches]), torch.cat([b.targets for b in batches])
        return Batch(inputs, targets, joined("ids"), joined("boxes"))


class Task:
    """A problem that generates its data from a seed and owns its loss, metrics and rendering.

    Subclasses set `Config` (a frozen dataclass of sizes) and implement `spec`, `sample` and
    `token_names`; classification tasks inherit cross-entropy and accuracy.
    """

    Config: ClassVar[type]
    config: Any  # an instance of Config; subclasses narrow the type
    metric: ClassVar[str] = "accuracy"  # the metric early stopping and comparisons use
    maximize: ClassVar[bool] = True  # whether a larger `metric` is better

    def __init__(self, config: Any = None) -> None:
        self.config = config if config is not None else self.Config()

    @property
    def spec(self) -> TaskSpec:
        raise NotImplementedError

    def sample(self, batch_size: int, generator: torch.Generator) -> Batch:
        """batch_size fresh examples drawn with generator (the same generator state, the same batch)."""
        raise NotImplementedError

    def eval_set(self, size: int, split: str = "val") -> Batch:
        """A fixed set of examples, the same for every run and model: split 'val' or 'test'."""
        seeds = {"val": 2**31 - 2, "test": 2**31 - 3}
        if split not in seeds:
            raise ValueError(f"split must be 'val' or 'test', got {split!r}")
        return self.sample(size, torch.Generator().manual_seed(seeds[split]))

    def loss(self, logits: Tensor, batch: Batch) -> Tensor:
        """logits (b, n, num_outputs) -> mean cross-entropy over the answers."""
        return F.cross_entropy(logits.flatten(0, 1), batch.targets.flatten())

    def metrics(self, logits: Tensor, batch: Batch) -> dict[str, float]:
        """accuracy per answer token and per whole answer (every token right)."""
        right = logits.argmax(-1) == batch.targets  # (b, n)
        return {
            "accuracy": right.float().mean().item(),
            "sequence_accuracy": right.all(-1).float().mean().item(),
        }

    def prepare_model(self, model: Any) -> None:
        """Called once on a freshly built model (never on one rebuilt from a run folder): a task whose
        model starts from pretrained parts loads them here. Most tasks have none."""

    def save_assets(self, folder: str | Path) -> None:
        """Write what the task derived from its data (a vocabulary) into a run folder; most have none."""

    def load_assets(self, folder: str | Path) -> None:
        """Take back what `save_assets` wrote, before `spec` is read; most tasks have none."""

    def token_names(self) -> list[str]:
        """A printable name for every token id (index = id)."""
        raise NotImplementedError

    def answer_text(self, answer: Tensor) -> str:
        """One example's answer (n,) ints, or a prediction's, as a short label for a figure's title: the
        ints joined by spaces; tasks whose classes stand for something else say what."""
        return " ".join(str(int(v)) for v in answer.reshape(-1))

    def render(self, batch: Batch, index: int = 0, logits: Tensor | None = None) -> str:
        """One example as text: its input, its answer and, given logits (b, n, o), the prediction."""
        names = self.token_names()
        row = batch.inputs[index]
        shown = " ".join(names[int(t)] for t in row if int(t) != PAD)
        answer = " ".join(names[int(t)] for t in batch.targets[index])
        text = f"input: {shown}\nanswer: {answer}"
        if logits is not None:
            text += "\npredicted: " + " ".join(names[int(t)] for t in logits[index].argmax(-1))
        return text


TASKS: Registry[type[Task]] = Registry("task")


def build_task(name: str, config: dict[str, Any] | None = None) -> Task:
    """A task by registry name with config values (plain data) checked against its Config."""
    from attnlab.config import build

    cls = TASKS.get(name)
    return cls(build(cls.Config, config, where="task"))
