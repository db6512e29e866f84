"""The memory networks of attnlab.memory as task families: "memn2n" and "kvmemnn".

End-To-End Memory Networks (Sukhbaatar et al. 2015, arXiv:1503.08895) and Key-Value Memory
Networks (Miller et al. 2016, arXiv:1606.03126) read a story of sentences and a question. A task
that feeds them lays each example out flat and says how in `TaskSpec.layout = (m, s, q)`:

    inputs (b, m*s + q)  ->  story (b, m, s), question (b, q)  ->  memory model  ->  logits (b, 1, v)

story_mask marks the sentences that hold a word (all-PAD rows are padding). Composition only:
every equation lives in attnlab.memory.

Linear start (Sukhbaatar et al. 2015, sec. 4.2): "memn2n" with `linear_start=True` trains without
the softmax of the hops until the validation loss stops falling, then re-inserts it. The training
loop calls `on_eval(step, val_metrics)` after every evaluation; the family ends the LS phase there
once the validation loss has not reached a new low for `linear_start_patience` evaluations, or at
the first evaluation at or after step `linear_start_steps`. The phase, the lowest loss so far and
the count of stalled evaluations are buffers, so a resumed run continues the schedule exactly.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

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


SCHEDULE_FIELDS = ("linear_start_patience", "linear_start_steps")  # the family's, not the network's


def network_values(config, memory_size: int) -> dict:
    """The fields of a family config that the network's config takes, with memory_size filled in."""
    values = {k: v for k, v in dataclasses.asdict(config).items() if k not in SCHEDULE_FIELDS}
    return {**values, "memory_size": config.memory_size or memory_size}


@dataclass(frozen=True)
class MemN2NFamilyConfig:
    embed_dim: int = 20  # d, the size of m_i, c_i and u
    hops: int = 3  # K, memory reads per question
    memory_size: int = 0  # sentences kept, the most recent; 0 = the task's m
    encoding: str = "position"  # sentence encoding: "bow" (sum of words) or "position" (PE)
    temporal: bool = True  # add the learned T_A(i), T_C(i) by sentence age
    random_noise: float = 0.0  # RN: training-time chance of an empty memory before each sentence
    linear_start: bool = False  # LS: start with p = u^T m unnormalised (no softmax)
    linear_start_patience: int = 1  # LS ends after this many evaluations without a new low val loss; 0 = never
    linear_start_steps: int = 0  # LS ends at the first evaluation at or after this step; 0 = no such limit
    tying: str = "adjacent"  # weight tying across hops: "adjacent" or "layerwise"
    init_std: float = 0.1  # std of the normal initialisation of every embedding

    def __post_init__(self):
        for name in ("memory_size", "linear_start_patience", "linear_start_steps"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        MemN2NConfig(vocab_size=2, **network_values(self, 1))


@dataclass(frozen=True)
class KVMemNNFamilyConfig:
    embed_dim: int = 20  # d, the size of keys, values and queries
    hops: int = 2  # H, key addressings per question
    memory_size: int = 0  # sentences kept, the most recent; 0 = the task's m
    encoding: str = "position"  # Phi: "bow" (sum of words) or "position" (PE weighted)
    values: str = "sentence"  # what a slot's value holds: "sentence" or "last_word"
    init_std: float = 0.1  # std of the normal initialisation of every parameter

    def __post_init__(self):
        if self.memory_size < 0:
            raise ValueError(f"memory_size must be >= 0, got {self.memory_size}")
        KVMemNNConfig(vocab_size=2, **{**dataclasses.asdict(self), "memory_size": max(self.memory_size, 1)})


class _MemoryFamily(TaskModel):
    """A memory network behind the TaskModel interface: flat (m, s, q) rows in, (b, 1, v) logits out."""

    name = ""
    network: type[nn.Module]
    network_config: type

    def __init__(self, config, spec: TaskSpec):
        super().__init__(config, spec)
        check_layout(spec, self.name)
        values = network_values(config, spec.layout[0])
        self.memory = self.network(self.network_config(vocab_size=spec.vocab_size, **values))

    def forward(self, inputs: Tensor, targets: Tensor | None = None) -> Tensor:
        """inputs (b, m*s + q) token ids -> logits (b, 1, vocab_size)."""
        story, story_mask, question = split_layout(inputs, self.spec.layout)
        return self.memory(story, question, story_mask)[:, None, :]  # (b, 1, v)


@MODELS.register("memn2n")
class MemN2NFamily(_MemoryFamily):
    """End-to-end memory network (Sukhbaatar et al. 2015) over a task's (m, s, q) stories."""

    Config = MemN2NFamilyConfig
    name = "memn2n"
    network = MemN2N
    network_config = MemN2NConfig

    def __init__(self, config: MemN2NFamilyConfig, spec: TaskSpec):
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
        cfg = self.config
        if self.memory.linear_start:
            loss = metrics["loss"]
            if loss < float(self.ls_best_loss):
                self.ls_best_loss.fill_(loss)
                self.ls_stalls.zero_()
            else:
                self.ls_stalls += 1
            stalled = 0 < cfg.linear_start_patience <= int(self.ls_stalls)
            if stalled or 0 < cfg.linear_start_steps <= step:
                self.memory.linear_start = False
        return {"linear_start": float(self.memory.linear_start)}


@MODELS.register("kvmemnn")
class KVMemNNFamily(_MemoryFamily):
    """Key-value memory network (Miller et al. 2016) over a task's (m, s, q) stories."""

    Config = KVMemNNFamilyConfig
    name = "kvmemnn"
    network = KVMemNN
    network_config = KVMemNNConfig
