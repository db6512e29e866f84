"""The NTM/DNC view: read and write weightings over memory slots and time, and the memory at each step.

The weightings are `attnlab.viz.machines.machine_weights` of the trace: (heads, n slots, t steps)
for kind "read" and kind "write". The memory contents M_t (n, w) are not part of the trace; they
are read from the machine's own recurrent state, stepping its eager `step` from `initial_state`
over the same input (no capture), so the slider shows the memory each weighting acted on.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from attnlab.explorer.loaded import LoadedRun
from attnlab.explorer.params import Params
from attnlab.explorer.views import View
from attnlab.explorer.views.common import picked, rounded
from attnlab.train import Run
from attnlab.viz.machines import machine_weights

MAX_MEMORY_VALUES = 400_000  # t x n x w floats of memory contents sent at most


def applies(loaded: LoadedRun) -> bool:
    return "read" in loaded.kinds or "write" in loaded.kinds


def memory_contents(run: Run, inputs: Tensor) -> Tensor | None:
    """M_t after every step t of one episode: (t, n, w); None for a model without a stepping machine.

    Args:
        run: its model has `.machine` with `initial_state(b)` and `step(x_t, state) -> (y, state)`.
        inputs: (1, t, f) the episode.
    """
    machine = getattr(run.model, "machine", None)
    if machine is None or not hasattr(machine, "step") or not hasattr(machine, "initial_state"):
        return None
    state = machine.initial_state(1, inputs.device, inputs.dtype)
    memories = []
    for t in range(inputs.shape[1]):
        _, state = machine.step(inputs[:, t], state)
        memories.append(state.memory[0])  # (n, w)
    return torch.stack(memories)  # (t, n, w)


def data(loaded: LoadedRun, params: Params) -> dict[str, Any]:
    """{"example", "read": (heads, n, t), "write": (heads, n, t), "memory": (t, n, w) or None,
    "inputs": (t, f), "targets": (n_answers, o), "outputs": (n_answers, o) sigmoid of the logits}."""
    k, batch, rows = picked(loaded, params)
    seen, _ = loaded.traced(batch, rows)
    kinds = seen.trace.kinds()
    read = machine_weights(seen.trace, "read") if "read" in kinds else None  # (heads, n, t)
    write = machine_weights(seen.trace, "write") if "write" in kinds else None  # (heads, n, t)
    inputs = batch.inputs.float()  # (1, t, f)
    memory: Tensor | None = loaded.forward(lambda run: memory_contents(run, inputs))  # (t, n, w) or None
    note = None
    if memory is not None and memory.numel() > MAX_MEMORY_VALUES:
        note = f"memory contents not sent: {memory.numel()} values exceed {MAX_MEMORY_VALUES}"
        memory = None
    elif memory is None:
        note = "this model has no stepping machine to read memory contents from"
    steps = (read if read is not None else write).shape[-1]  # type: ignore[union-attr]
    return {
        "view": "machine",
        "example": k,
        "steps": int(steps),
        "read": None if read is None else rounded(read),
        "write": None if write is None else rounded(write),
        "memory": None if memory is None else rounded(memory, 3),
        "memory_note": note,
        "inputs": rounded(inputs[0], 3),
        "targets": rounded(batch.targets[0].float(), 3),
        "outputs": rounded(torch.sigmoid(seen.logits[0].float()), 3),
        "answer_len": int(loaded.task.spec.answer_len),
    }


VIEW = View("machine", "memory machine", applies, data)
