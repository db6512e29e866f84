"""What a memory machine did on one episode: where it wrote and where it read, step by step.

The NTM and the DNC record, at every step, each write head's weighting over the memory slots
(kind "write", (b, heads, 1, n)) and each read head's (kind "read", (b, heads, 1, n)). Stacked over
the steps they give a slot x step picture per head: on copy, a trained NTM writes the input
vectors to consecutive slots (a diagonal) and then reads them back along the same diagonal
(Graves et al. 2014, fig. 6). The figure shows the input and the answers beside them.

`draw_machine_examples` draws the episodes of `attnlab.train.examples.traced_examples`;
`draw_lengths` draws a benchmark's errors per sequence against the test length, one line per family.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from matplotlib.figure import Figure
from torch import Tensor

from attnlab.core import Trace
from attnlab.files import output_file
from attnlab.tasks.algorithmic import IGNORE
from attnlab.tasks.base import Batch, Task
from attnlab.train.examples import TracedExamples
from attnlab.viz.curves import draw_comparison


def machine_weights(trace: Trace, kind: str, example: int = 0, path: str | None = None) -> Tensor:
    """One example's weightings of every step for the read or write heads.

    Args:
        trace: the trace of one forward call of an NTM or DNC.
        kind: "read" or "write".
        example: the batch row.
        path: the recording module; default the first that recorded `kind`.
    Returns:
        (heads, n, t): head, memory slot, step.
    Raises:
        ValueError: nothing of that kind was recorded.
    """
    records = trace.select(kind=kind)
    if not records:
        raise ValueError(f"trace: no kind {kind!r} records; recorded paths: {trace.paths()}")
    path = records[0].path if path is None else path
    steps = [r.weights[example, :, 0] for r in records if r.path == path]  # t x (heads, n)
    return torch.stack(steps, dim=-1)  # (heads, n, t)


def draw_machine(
    trace: Trace, batch: Batch, logits: Tensor, path: str | Path, *, example: int = 0, title: str | None = None
) -> Path:
    """Input, answers, prediction and every head's write and read weightings for one episode.

    Args:
        trace: the trace of the forward call that gave logits.
        batch: its batch; inputs (b, t, f), targets (b, n, o) with IGNORE rows for absent answers.
        logits: (b, n, o) the model's answers.
        path: where to save (.png or .svg).
        example: the batch row drawn.
        title: the figure's title.
    Returns:
        path.
    """
    x, logits = batch.inputs[example].detach().float(), logits.detach()  # (t, f), (b, n, o)
    start = int((x.abs().sum(-1) > 0).nonzero().flatten()[0]) if x.abs().sum() > 0 else 0
    kept = (batch.targets[example] != IGNORE).all(-1)  # (n,)
    panels = [
        ("input", x[start:].T.numpy(), "Greys"),
        ("answer", batch.targets[example][kept].T.float().numpy(), "Greys"),
        ("predicted", torch.sigmoid(logits[example][kept].float()).T.numpy(), "Greys"),
    ]
    for kind in ("write", "read"):
        weights = machine_weights(trace, kind, example)[..., start:]  # (heads, n, t')
        used = weights.amax(dim=(0, 2)) > 0.01  # (n,) slots any head touched
        top = int(used.nonzero().flatten()[-1]) + 1 if used.any() else weights.shape[1]
        for head, w in enumerate(weights[:, :top]):
            label = f"{kind} weights" + (f", head {head + 1}" if len(weights) > 1 else "")
            panels.append((label, w.numpy(), "Blues"))
    fig = Figure(figsize=(10, 1.2 + 1.6 * len(panels)))
    axes = fig.subplots(len(panels), 1, squeeze=False)[:, 0]
    for ax, (label, values, cmap) in zip(axes, panels):
        ax.imshow(
            values,
            cmap=cmap,
            vmin=0.0,
            vmax=max(1.0, float(np.abs(values).max())),
            aspect="auto",
            interpolation="nearest",
        )
        ax.set_ylabel(label, fontsize=8, rotation=0, ha="right", va="center")
        ax.tick_params(labelsize=7)
    axes[-1].set_xlabel("step (input from its first vector; answers: answer index)")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    path = output_file(path)
    fig.savefig(path, dpi=110)
    return path


def draw_lengths(result: dict, path: str | Path) -> Path:
    """A benchmark's bit errors per sequence against the test length (or item count), per family.

    Args:
        result: benchmarks/machines.py's JSON: models -> {"tests": {length: {"bit_errors": ...}}}, and "key".
        path: where to save.
    """
    summary = [
        {"model": model, "setting": n, "mean": r["bit_errors"], "min": r["bit_errors"], "max": r["bit_errors"]}
        for model, entry in result["models"].items()
        for n, r in entry["tests"].items()
    ]
    draw_comparison(
        summary,
        metric="bit errors per sequence",
        x_label=f"test {result['key']}",
        title=f"{result['task']}, trained on {result['train']}",
        path=path,
    )
    return Path(path)


def draw_machine_examples(seen: TracedExamples, task: Task, out: Path, label: str) -> list[Path]:
    """Write and read weightings of an NTM or DNC on its test episodes into out; returns the files.

    Args:
        seen: test episodes with the logits and trace of the machine (kinds "write" and "read").
        task: renders the episodes into examples.txt.
        out: the folder for memory-example<i>.png and examples.txt.
        label: "<model> on <task>", the start of every title.
    """
    data, logits = seen.data, seen.logits
    paths = [
        draw_machine(seen.trace, data, logits, out / f"memory-example{i}.png", example=i, title=f"{label}, example {i}")
        for i in range(len(data))
    ]
    text = "\n\n".join(task.render(data, i, logits) for i in range(len(data)))
    (out / "examples.txt").write_text(text + "\n")
    return [*paths, out / "examples.txt"]
