"""The attention of a trained run on a few test examples, drawn the way its trace asks for.

`draw_run` runs the model once (`attnlab.train.examples.traced_examples`) and looks at the kinds
the trace recorded: each kind has a drawer in `DRAWERS`,

    "memory"                               story sentences x hops       (attnlab.viz.memory)
    "read", "write"                        memory slots x steps per head (attnlab.viz.machines)
    "glimpse"                              glimpse paths on the images   (attnlab.viz.glimpse)
    "cross" of a captioning task           the image once per word       (attnlab.viz.captioning)
    "self", "cross", "spatial", "hopfield" layers x heads, one grid per stack (here)

A stack decoded step by step with a KV cache records one query row per step; those rows are put
back together into the full (queries x keys) matrix.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Protocol

import torch
from torch import Tensor
from torch.nn import functional as F

from attnlab.core import Trace
from attnlab.errors import ConfigError
from attnlab.files import output_dir
from attnlab.tasks.base import Task
from attnlab.tasks.captioning import CaptionTask
from attnlab.train.examples import HasTaskAndModel, TracedExamples, traced_examples
from attnlab.viz.captioning import draw_caption_examples
from attnlab.viz.glimpse import draw_glimpse_examples
from attnlab.viz.heatmap import draw_heads
from attnlab.viz.machines import draw_machine_examples
from attnlab.viz.memory import draw_hop_examples


class RunNames(Protocol):
    """The names a run's config gives its task and model family (attnlab.train.RunConfig)."""

    @property
    def task(self) -> str: ...

    @property
    def model(self) -> str: ...


class DrawableRun(HasTaskAndModel, Protocol):
    """A run (attnlab.train.Run): a task, a model and the config that names both."""

    @property
    def config(self) -> RunNames: ...


@dataclass(frozen=True)
class Drawer:
    """How the records of some kinds are drawn."""

    # (examples, task, out folder, "<model> on <task>" for titles) -> the files written
    draw: Callable[[TracedExamples, Task, Path, str], list[Path]]
    at_least: int = 1  # examples drawn however few are asked for


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


def _axis_labels(name: str, shape: tuple[int, ...], inputs: list[str], answers: list[str]) -> tuple[list, list]:
    """Query and key labels for one stack's (queries, keys) matrices: inputs, decoded answers, or both in a row."""
    decoded = ["<s>", *answers[:-1]]
    sequence = inputs + answers
    rows, cols = shape
    if name.endswith("cross"):
        return decoded[:rows], inputs[:cols]
    if "decoder" in name:
        return decoded[:rows], decoded[:cols]
    return sequence[:rows], sequence[:cols]


def draw_head_examples(seen: TracedExamples, task: Task, out: Path, label: str) -> list[Path]:
    """One layers x heads grid per stack and example, and the examples as text; returns the files.

    Args:
        seen: the examples with the trace of their forward pass; every record is drawn.
        task: renders the examples and names their tokens.
        out: the folder for `<stack>-<kind>-example<i>.png` and examples.txt.
        label: "<model> on <task>", the start of every title.
    """
    data, logits = seen.data, seen.logits
    names = task.token_names() if task.spec.tokens else []
    predicted = logits.argmax(-1)  # (b, n)
    paths = []
    for name, layers in stacks_from_trace(seen.trace).items():
        for i in range(len(data)):
            if task.spec.tokens:
                inputs = [names[int(t)] for t in data.inputs[i]]
                answers = [names[int(t)] for t in predicted[i]]
            else:  # float inputs: positions stand in for tokens
                inputs, answers = [str(p) for p in range(data.inputs.shape[1])], []
            grid = [layer[i] for layer in layers]  # L x (h, I, J)
            rows, cols = _axis_labels(name, tuple(grid[0].shape[-2:]), inputs, answers)
            path = out / f"{name.replace(' ', '-').replace('.', '-') or 'attention'}-example{i}.png"
            draw_heads(
                grid,
                tokens=cols if len(cols) == grid[0].shape[-1] else None,
                query_tokens=rows if len(rows) == grid[0].shape[-2] else None,
                path=path,
                title=f"{label}: {name}, example {i}",
            )
            paths.append(path)
    text = "\n\n".join(task.render(data, i, logits) for i in range(len(data)))
    (out / "examples.txt").write_text(text + "\n")
    return [*paths, out / "examples.txt"]


HEADS = Drawer(draw_head_examples)
MACHINE = Drawer(draw_machine_examples)
DRAWERS: dict[str, Drawer] = {  # what a recorded kind is drawn as; a kind not here is not drawn
    "memory": Drawer(draw_hop_examples),
    "read": MACHINE,
    "write": MACHINE,
    "glimpse": Drawer(draw_glimpse_examples, at_least=4),
    "self": HEADS,
    "cross": HEADS,
    "spatial": HEADS,
    "hopfield": HEADS,
}


CAPTIONS = Drawer(draw_caption_examples)  # a captioning task's "cross" records: the image once per word


def _only(seen: TracedExamples, kinds: list[str]) -> TracedExamples:
    """The same examples with the records of `kinds` only."""
    trace = Trace(detach=seen.trace.detach)
    trace.records = [r for r in seen.trace.records if r.kind in kinds]
    return replace(seen, trace=trace)


def draw_run(run: DrawableRun, out: str | Path, *, examples: int = 3) -> list[Path]:
    """Draw what run.model's attention recorded on `examples` test examples into out; returns the files.

    The model runs once; each recorded kind goes to its drawer in `DRAWERS` (a drawer that shows
    at least more examples than asked, as the glimpse paths do, runs it once more on that many).

    Args:
        run: an attnlab.train.Run (task, model, config).
        out: the folder for the figures and the rendered examples (created).
        examples: how many test examples.
    Returns:
        The files written, figures first.
    Raises:
        ConfigError: the model recorded nothing that a drawer draws.
    """
    out = Path(out)
    seen = traced_examples(run, examples)
    kinds: dict[Drawer, list[str]] = {}
    for kind in seen.trace.kinds():
        if isinstance(run.task, CaptionTask) and kind == "cross":  # a decoder looking at an image: per word
            kinds.setdefault(CAPTIONS, []).append(kind)
        elif kind in DRAWERS:
            kinds.setdefault(DRAWERS[kind], []).append(kind)
    if not kinds:
        raise ConfigError(f"model {run.config.model!r} has no attention to draw; try a transformer, encdec or lm run")
    output_dir(out)
    label = f"{run.config.model} on {run.config.task}"
    paths: list[Path] = []
    for drawer, drawn in kinds.items():
        wanted = max(examples, drawer.at_least)
        mine = seen if wanted == examples else traced_examples(run, wanted)
        paths += drawer.draw(_only(mine, drawn), run.task, out, label)
    return list(dict.fromkeys(paths))
