"""The memory networks of attnlab.memory as task families: "memn2n" and "kvmemnn".

End-To-End Memory Networks (Sukhbaatar et al. 2015, arXiv:1503.08895) and Key-Value Memory
Networks (Miller et al. 2016, arXiv:1606.03126) read a story of sentences and a question. A task
that feeds them lays each example out flat and says how in `TaskSpec.layout = (m, s, q)`:

    inputs (b, m*s + q)  ->  story (b, m, s), question (b, q)  ->  memory model  ->  logits (b, 1, v)

story_mask marks the sentences that hold a word (all-PAD rows are padding). Composition only:
every equation lives in attnlab.memory.

Both families take the network's own config; its `memory_size` is 0 by default here (the registry
entry's default), which keeps all m sentences of the task's stories.

Linear start (Sukhbaatar et al. 2015, sec. 4.2): "memn2n" with `linear_start=True` trains without
the softmax of the hops until the validation loss stops falling, then re-inserts it. The training
loop calls `on_eval(step, val_metrics)` after every evaluation; the family ends the LS phase there
once the validation loss has not reached a new low for `linear_start_patience` evaluations, or at
the first evaluation at or after step `linear_start_steps` (both fields of MemN2NConfig). The
phase, the lowest loss so far and the count of stalled evaluations are buffers, so a resumed run
continues the schedule exactly.
"""

from __future__ import annotations

from typing import Any, ClassVar, cast

import torch
from torch import Tensor, nn

from attnlab.memory.kvmemnn import KVMemNN, KVMemNNConfig
from attnlab.memory.memn2n import MemN2N, MemN2NConfig
from attnlab.models.registry import MODELS, TaskModel
from attnlab.spec import PAD, TaskSpec


def split_layout(inputs: Tensor, layout: tuple[int, ...]) -> tuple[Tensor, Tensor, Tensor]:
    """Flat rows back into a story and a question.

    Args:
        inputs: (b, m*s + q) token ids.
        layout: (m, s, q).
    Returns:
        story (b, m, s), story_mask (b, m) bool (True where a sentence holds a word), question (b, q).
    """
    m, s, q = layout
    b, t = inputs.shape
    if t != m * s + q:
        raise ValueError(f"inputs have {t} positions; layout {tuple(layout)} needs m*s + q = {m * s + q}")
    story = inputs[:, : m * s].reshape(b, m, s)  # (b, m, s)
    question = inputs[:, m * s :]  # (b, q)
    return story, (story != PAD).any(-1), question  # story_mask (b, m)


def check_layout(spec: TaskSpec, family: str) -> None:
    """A one-line ValueError unless spec describes token stories with one answer over the vocabulary."""
    if len(spec.layout) != 3:
        raise ValueError(f"{family}: needs a task with TaskSpec.layout = (m, s, q); got layout {spec.layout!r}")
    m, s, q = spec.layout
    if spec.seq_len != m * s + q:
        raise ValueError(f"{family}: TaskSpec.layout {spec.layout} gives {m * s + q} positions; seq_len {spec.seq_len}")
    if not spec.tokens or spec.answer_len != 1 or spec.num_outputs != spec.vocab_size:
        raise ValueError(f"{family}: needs token inputs and one answer over the vocabulary (num_outputs == vocab_size)")


class _MemoryFamily(TaskModel):
    """A memory network behind the TaskModel interface: flat (m, s, q) rows in, (b, 1, v) logits out."""

    name: ClassVar[str] = ""
    network: ClassVar[type[nn.Module]]

    def __init__(self, config: Any, spec: TaskSpec):
        super().__init__(config, spec)
        check_layout(spec, self.name)
        self.memory = self.network(config, spec.vocab_size, spec.layout[0])

    def forward(self, inputs: Tensor, targets: Tensor | None = None, noise: Tensor | None = None) -> Tensor:
        """inputs (b, m*s + q) token ids -> logits (b, 1, vocab_size); noise: see `draw_noise`."""
        story, story_mask, question = split_layout(inputs, self.spec.layout)
        if noise is None:
            return self.memory(story, question, story_mask)[:, None, :]  # (b, 1, v)
        return self.memory(story, question, story_mask, noise)[:, None, :]  # (b, 1, v)

    def clip_groups(self) -> list[tuple[str, ...]]:
        """The network's parameters that train.clip_each clips as one matrix (attnlab.train.clipping.clip_groups)."""
        groups = getattr(self.memory, "clip_groups", None)
        return [] if groups is None else [tuple(f"memory.{name}" for name in group) for group in groups()]

    def draw_noise(self, inputs: Tensor) -> Tensor | None:
        """The random draws a training forward on inputs makes, drawn now; None if it makes none.

        forward(inputs, noise=draw_noise(inputs)) is forward(inputs) with torch's generator in the
        same state, so K seeds trained as one model (attnlab.train.vectorised) draw what K runs would.
        """
        draw = getattr(self.memory, "draw_noise", None)
        return None if draw is None else draw((inputs.shape[0], self.spec.layout[0]), inputs.device)


@MODELS.register("memn2n", defaults={"memory_size": 0})
class MemN2NFamily(_MemoryFamily):
    """End-to-end memory network (Sukhbaatar et al. 2015) over a task's (m, s, q) stories."""

    Config = MemN2NConfig
    name = "memn2n"
    network = MemN2N
    ls_best_loss: Tensor
    ls_stalls: Tensor

    def __init__(self, config: MemN2NConfig, spec: TaskSpec):
        super().__init__(config, spec)
        self.register_buffer("ls_best_loss", torch.tensor(float("inf")))  # lowest val loss of the LS phase
        self.register_buffer("ls_stalls", torch.tensor(0))  # evaluations since that low

    def on_eval(self, step: int, metrics: dict[str, float]) -> dict[str, float]:
        """After an evaluation: end the LS phase when the val loss stalls or at linear_start_steps.

        Args:
            step: optimizer steps done.
            metrics: the validation metrics, with "loss".
        Returns:
            {"linear_start": 1.0 or 0.0}, the phase from the next step on, for the metrics record.
        """
        cfg, memory = self.config, cast(MemN2N, self.memory)
        if memory.linear_start:
            if cfg.linear_start_patience > 0:  # kept only where it decides: a scheduled end is the same for every seed
                loss = metrics["loss"]
                if loss < float(self.ls_best_loss):
                    self.ls_best_loss.fill_(loss)
                    self.ls_stalls.zero_()
                else:
                    self.ls_stalls += 1
            stalled = 0 < cfg.linear_start_patience <= int(self.ls_stalls)
            if stalled or 0 < cfg.linear_start_steps <= step:
                memory.linear_start = False
        return {"linear_start": float(memory.linear_start)}


@MODELS.register("kvmemnn", defaults={"memory_size": 0})
class KVMemNNFamily(_MemoryFamily):
    """Key-value memory network (Miller et al. 2016) over a task's (m, s, q) stories."""

    Config = KVMemNNConfig
    name = "kvmemnn"
    network = KVMemNN
