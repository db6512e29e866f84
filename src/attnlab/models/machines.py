"""Memory machines behind the TaskModel interface: composition only, the maths is in attnlab.memory.

    "ntm"  Neural Turing Machine (Graves et al. 2014; attnlab.memory.ntm)
    "dnc"  Differentiable Neural Computer (Graves et al. 2016; attnlab.memory.dnc)

Both step through the input (b, t, f) one vector at a time, reading and writing an external
memory, and emit an output at every step; the answers are the outputs at the last n steps. No
weight depends on the sequence length or on the number of memory slots' contents, so a machine
trained on short sequences runs unchanged on long ones (`attnlab.train.retarget`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from torch import Tensor

from attnlab.memory.dnc import DNC, DNCConfig
from attnlab.memory.ntm import NTM, NTMConfig
from attnlab.models.baselines import check_answers
from attnlab.models.registry import MODELS, TaskModel
from attnlab.spec import TaskSpec


def _require_features(name: str, spec: TaskSpec) -> None:
    if spec.tokens or spec.image or spec.input_features < 1:
        raise ValueError(f"model {name!r} reads float vectors (b, t, f); this task's inputs are not")
    check_answers(spec)


@dataclass(frozen=True)
class NTMFamilyConfig:
    controller: str = "lstm"  # "lstm" or "feedforward"
    controller_size: int = 100  # controller width
    memory_size: int = 128  # n, memory slots
    word_size: int = 20  # w, width of a slot
    num_reads: int = 1  # read heads
    num_writes: int = 1  # write heads
    shift_range: int = 1  # location shifts -s..s

    def __post_init__(self):
        NTMConfig(input_size=1, output_size=1, **dataclasses.asdict(self))  # its checks, once


class _MachineFamily(TaskModel):
    """A memory machine whose outputs at the last n steps are the answers' logits."""

    name = ""
    machine_class: type
    machine_config: type

    def __init__(self, config, spec: TaskSpec):
        super().__init__(config, spec)
        _require_features(self.name, spec)
        sizes = {"input_size": spec.input_features, "output_size": spec.num_outputs}
        self.machine = self.machine_class(self.machine_config(**sizes, **dataclasses.asdict(config)))

    def forward(self, inputs: Tensor, targets: Tensor | None = None) -> Tensor:
        """inputs (b, t, f) -> logits (b, n, o)."""
        return self.machine(inputs)[:, -self.spec.answer_len :]  # (b, n, o)


@MODELS.register("ntm")
class NTMFamily(_MachineFamily):
    """Neural Turing Machine (Graves et al. 2014)."""

    Config = NTMFamilyConfig
    name = "ntm"
    machine_class = NTM
    machine_config = NTMConfig


@dataclass(frozen=True)
class DNCFamilyConfig:
    controller_size: int = 64  # LSTM controller width
    memory_size: int = 64  # N, memory slots
    word_size: int = 16  # W, width of a slot
    num_reads: int = 4  # R, read heads
    num_writes: int = 1  # write heads (the paper's one)

    def __post_init__(self):
        DNCConfig(input_size=1, output_size=1, **dataclasses.asdict(self))  # its checks, once


@MODELS.register("dnc")
class DNCFamily(_MachineFamily):
    """Differentiable Neural Computer (Graves et al. 2016)."""

    Config = DNCFamilyConfig
    name = "dnc"
    machine_class = DNC
    machine_config = DNCConfig
