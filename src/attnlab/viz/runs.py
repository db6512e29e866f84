"""The attention of a trained run on a few test examples: one figure of layers x heads per stack.

Works for every family that attends. A stack decoded step by step with a KV cache records one
query row per step; those rows are put back together into the full (queries x keys) matrix.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor
from torch.nn import functional as F

from attnlab.core import Trace, capture
from attnlab.errors import ConfigError
from attnlab.viz.glimpse import draw_glimpse_run
from attnlab.viz.heatmap import draw_heads
from attnlab.viz.machines import draw_machine_run
from attnlab.viz.memory import draw_memory_run

MEMORY_FAMILIES = ("memn2n", "kvmemnn")  # drawn as story sentences x hops
MACHINE_FAMILIES = ("ntm", "dnc")  # drawn as memory slots x steps, per read and write head
GLIMPSE_FAMILIES = ("ram",)  # drawn as glimpse paths on the images


def merge_steps(weights: list[Tensor]) -> Tensor:
    """Per-step weights (b, h, i_s, j_s) of one module -> (b, h, sum i_s, max j_s), zero-padded keys."""
    width = max(w.shape[-1] for w in weights)
    return torch.cat([F.pad(w, (0, width - w.shape[-1])) for w in weights], dim=-2)  # (b, h, I, J)


def stacks_from_trace(trace: Trace) -> dict[str, list[Tensor]]:
    """Attention grouped as '<stack> <kind>' -> one (b, h, I, J) tensor per layer, in call order.

    The stack is the module path up to its `.layers.` part (e.g. 'net.decoder'), so an encoder's
    and a decoder's self-attention are kept apart.
    """
    by_path: dict[tuple[str, str], list[Tensor]] = {}
    for record in trace.records:
        by_path.setdefault((record.path, record.kind), []).append(record.weights)
    stacks: dict[str, list[Tensor]] = {}
    for (path, kind), weights in by_path.items():
        stack = path.split(".layers.")[0] if ".layers." in path else path
        stacks.setdefault(f"{stack} {kind}".strip(), []).append(merge_steps(weights))
    return stacks


def _axis_labels(name: str, shape: tuple[int, int], inputs: list[str], answers: list[str]) -> tuple[list, list]:
    """Query and key labels for one stack's matrices: inputs, decoded answers, or both in a row."""
    decoded = ["<s>", *answers[:-1]]
    sequence = inputs + answers
    rows, cols = shape
    if name.endswith("cross"):
        return decoded[:rows], inputs[:cols]
    if "decoder" in name:
        return decoded[:rows], decoded[:cols]
    return sequence[:rows], sequence[:cols]


@torch.no_grad()
def draw_run(run, out: str | Path, *, examples: int = 3) -> list[Path]:
    """Draw the attention of run.model on `examples` test examples into out; returns the files.

    `run` is an attnlab.train.Run (task, model, config). A family without attention is a ConfigError.
    Memory networks (memn2n, kvmemnn) get story sentences x hops instead (attnlab.viz.memory), and
    memory machines (ntm, dnc) their read and write weightings over slots and steps (attnlab.viz.machines),
    and the recurrent attention model its glimpse paths (attnlab.viz.glimpse).
    """
    if run.config.model in MEMORY_FAMILIES:
        return draw_memory_run(run, out, examples=examples)
    if run.config.model in MACHINE_FAMILIES:
        return draw_machine_run(run, out, examples=examples)
    if run.config.model in GLIMPSE_FAMILIES:
        return draw_glimpse_run(run, out, examples=max(examples, 4))
    out = Path(out)
    data = run.task.eval_set(examples, "test")
    run.model.eval()
    with capture(run.model) as trace:
        logits = run.model(data.inputs)  # (b, n, o)
    if not len(trace):
        raise ConfigError(f"model {run.config.model!r} has no attention to draw; try a transformer, encdec or lm run")
    names = run.task.token_names() if run.task.spec.tokens else []
    predicted = logits.argmax(-1)  # (b, n)
    paths = []
    for name, layers in stacks_from_trace(trace).items():
        for i in range(min(examples, len(data))):
            if run.task.spec.tokens:
                inputs = [names[int(t)] for t in data.inputs[i]]
                answers = [names[int(t)] for t in predicted[i]]
            else:  # float inputs: positions stand in for tokens
                inputs, answers = [str(p) for p in range(data.inputs.shape[1])], []
            grid = [layer[i] for layer in layers]  # L x (h, I, J)
            rows, cols = _axis_labels(name, tuple(grid[0].shape[-2:]), inputs, answers)
            path = out / f"{name.replace(' ', '-').replace('.', '-') or 'attention'}-example{i}.png"
            title = f"{run.config.model} on {run.config.task}: {name}, example {i}"
            draw_heads(grid, tokens=cols if len(cols) == grid[0].shape[-1] else None,
                       query_tokens=rows if len(rows) == grid[0].shape[-2] else None, path=path, title=title)
            paths.append(path)
    text = "\n\n".join(run.task.render(data, i, logits) for i in range(min(examples, len(data))))
    (out / "examples.txt").write_text(text + "\n")
    return [*paths, out / "examples.txt"]
