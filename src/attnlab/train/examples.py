"""A trained model on a few test examples, with everything its attention recorded.

The one place that runs a model under `attnlab.core.capture` for someone else: `attnlab viz`,
the tour and the benchmarks call `traced_examples(run, n)` and read the trace, so drawing code
never runs a model itself.

    seen = traced_examples(run, 3)          # eval mode, no gradients
    seen.data.inputs, seen.logits           # (b, t...), (b, n, o)
    seen.trace.kinds()                      # what was recorded: "self", "cross", "memory", ...
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import torch
from torch import Tensor, nn

from attnlab.core import Trace, capture
from attnlab.tasks.base import Batch, Task


class HasTaskAndModel(Protocol):
    """A run (attnlab.train.Run) or anything else with a task and a model for it."""

    @property
    def task(self) -> Task: ...

    @property
    def model(self) -> nn.Module: ...


@dataclass
class TracedExamples:
    """Examples, the model's logits on them and the trace of that forward pass."""

    data: Batch  # the examples: inputs (b, ...), targets (b, n)
    logits: Tensor  # (b, n, o)
    trace: Trace  # every record the model's attention made on data.inputs


@torch.no_grad()
def traced_examples(
    run: HasTaskAndModel, examples: int, split: str = "test", *, chunk: int | None = None
) -> TracedExamples:
    """Run run.model in eval mode on the first `examples` examples of split, under capture.

    Args:
        run: has .task (its eval_set gives the examples) and .model.
        examples: how many (fewer if the split is smaller).
        split: "val" or "test".
        chunk: at most this many examples per forward call (one capture records every call, in
            order), which bounds the memory on a whole split; None: one call.
    Returns:
        The examples, logits (b, n, o) and the trace. The model is left in eval mode.
    """
    if chunk is not None and chunk < 1:
        raise ValueError(f"chunk must be >= 1, got {chunk}")
    data = run.task.eval_set(examples, split)
    run.model.eval()
    with capture(run.model) as trace:
        if chunk is None:
            logits = run.model(data.inputs)  # (b, n, o)
        else:
            logits = torch.cat([run.model(data.inputs[i : i + chunk]) for i in range(0, len(data), chunk)])
    return TracedExamples(data, logits, trace)
