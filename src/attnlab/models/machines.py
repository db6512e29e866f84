"""Memory machines behind the TaskModel interface: composition only, the maths is in attnlab.memory.

    "ntm"  Neural Turing Machine (Graves et al. 2014; attnlab.memory.ntm)
    "dnc"  Differentiable Neural Computer (Graves et al. 2016; attnlab.memory.dnc)

Both step through the input (b, t, f) one vector at a time, reading and writing an external
memory, and emit an output at every step; the answers are the outputs at the last n steps. No
weight depends on the sequence length or on the number of memory slots' contents, so a machine
trained on short sequences runs unchanged on long ones (`attnlab.train.retarget`).
"""

from __future__ import annotations

from typing import Any, ClassVar

from torch import Tensor, nn

from attnlab.memory.dnc import DNC, DNCConfig
from attnlab.memory.ntm import NTM, NTMConfig
from attnlab.models.baselines import check_answers
from attnlab.models.registry import MODELS, TaskModel
from attnlab.spec import TaskSpec


def _require_features(name: str, spec: TaskSpec) -> None:
    if spec.tokens or spec.image or spec.input_features < 1:
        raise ValueError(f"model {name!r} reads float vectors (b, t, f); this task's inputs are not")
    check_answers(spec)


class _MachineFamily(TaskModel):
    """A memory machine whose outputs at the last n steps are the answers' logits."""

    name: ClassVar[str] = ""
    machine_class: ClassVar[type[nn.Module]]

    def __init__(self, config: Any, spec: TaskSpec):
        super().__init__(config, spec)
        _require_features(self.name, spec)
        self.machine = self.machine_class(config, spec.input_features, spec.num_outputs)

    def forward(self, inputs: Tensor, targets: Tensor | None = None) -> Tensor:
        """inputs (b, t, f) -> logits (b, n, o)."""
        return self.machine(inputs)[:, -self.spec.answer_len :]  # (b, n, o)


@MODELS.register("ntm")
class NTMFamily(_MachineFamily):
    """Neural Turing Machine (Graves et al. 2014)."""

    Config = NTMConfig
    name = "ntm"
    machine_class = NTM


@MODELS.register("dnc")
class DNCFamily(_MachineFamily):
    """Differentiable Neural Computer (Graves et al. 2016)."""

    Config = DNCConfig
    name = "dnc"
    machine_class = DNC
