"""The hops of a memory network on a few questions: story sentences (rows) x hops (columns).

For each question the figure lists the story's sentences as text, oldest first, and shows each
hop's weight p_i on each sentence (eq. 1 of Sukhbaatar et al. 2015; the key addressing of Miller
et al. 2016) as a coloured, annotated cell. The true supporting facts, when the task knows them
(bAbI's `Babi.support`), are marked with a star and a box. Read hop k of a 3-hop MemN2N on task 2
("where is the football?") and the largest weight should move from "john took the football" to
"john went to the garden".

The weights come from the trace of `attnlab.train.examples.traced_examples`, read with
`attnlab.memory.hop_weights`; this module never runs or reaches into the model. Figures are
plain `matplotlib.figure.Figure`s.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
from torch import Tensor

from attnlab.files import output_dir, output_file
from attnlab.memory import hop_weights
from attnlab.tasks.base import Task
from attnlab.train.examples import HasTaskAndModel, TracedExamples, traced_examples


@dataclass(frozen=True)
class HopFigure:
    """What one question's drawing shows."""

    sentences: tuple[str, ...]  # the non-empty memory slots as text, oldest first (the rows)
    slots: tuple[int, ...]  # each row's memory slot index
    weights: Tensor  # (n, K): row r, column k is hop k's weight on sentence r
    supporting: tuple[bool, ...]  # per row: a true supporting fact of the question
    question: str
    answer: str
    predicted: str


def draw_hops(figure: HopFigure, path: str | Path, *, title: str | None = None) -> Path:
    """Draw one question's sentences x hops into path (.png or .svg); returns path."""
    n, hops = figure.weights.shape
    values = figure.weights.float().numpy()  # (n, K)
    longest = max((len(s) for s in figure.sentences), default=10)
    fig = Figure(figsize=(2.5 + 0.075 * longest + 0.7 * hops, 1.4 + 0.32 * n))
    ax = fig.add_subplot()
    top = max(1.0, float(np.abs(values).max()) if values.size else 1.0)  # LS-phase scores are unnormalised
    image = ax.imshow(values, cmap="Blues", vmin=0.0, vmax=top, aspect="auto")
    fig.colorbar(image, ax=ax, fraction=0.04)
    labels = [("* " if sup else "") + text for text, sup in zip(figure.sentences, figure.supporting)]
    ax.set_yticks(range(n), labels, fontsize=8)
    ax.set_xticks(range(hops), [f"hop {k + 1}" for k in range(hops)], fontsize=8)
    ax.xaxis.tick_top()
    for r in range(n):
        if figure.supporting[r]:
            ax.get_yticklabels()[r].set_fontweight("bold")
            ax.add_patch(Rectangle((-0.5, r - 0.5), hops, 1, fill=False, edgecolor="darkorange", linewidth=2))
        for k in range(hops):
            colour = "white" if values[r, k] > 0.6 * top else "black"
            ax.text(k, r, f"{values[r, k]:.2f}", ha="center", va="center", fontsize=7, color=colour)
    caption = f"Q: {figure.question}\nanswer: {figure.answer}   predicted: {figure.predicted}   (* supporting fact)"
    ax.set_xlabel(caption, fontsize=8)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    path = output_file(path)
    fig.savefig(path, dpi=110)
    return path


def hop_figures(run: HasTaskAndModel, examples: int = 3, split: str = "test") -> list[HopFigure]:
    """What `draw_hop_examples` draws for the first `examples` rows of split.

    `run` is an attnlab.train.Run of a memory family on a task with a (m, s, q) layout.
    """
    return hop_figures_of(traced_examples(run, examples, split), run.task, split)


def hop_figures_of(seen: TracedExamples, task: Task, split: str = "test") -> list[HopFigure]:
    """One HopFigure per example, read from the trace of a memory network's forward pass.

    Args:
        seen: examples of split with their logits (b, 1, o) and a trace holding kind "memory".
        task: has a (m, s, q) layout and names the tokens; marks supporting facts if it has `support`.
        split: where the examples came from (`task.support(split)` marks the facts).
    """
    data, logits = seen.data, seen.logits
    weights = hop_weights(seen.trace)  # (b, K, m)
    support = task.support(split)[: len(data)] if hasattr(task, "support") else torch.zeros_like(weights[:, 0]).bool()
    names = task.token_names()
    m, s, _ = task.spec.layout
    out = []
    for i in range(len(data)):
        row = data.inputs[i].tolist()
        texts = [" ".join(names[t] for t in row[k * s : (k + 1) * s] if t != 0) for k in range(m)]
        slots = tuple(k for k, text in enumerate(texts) if text)
        out.append(
            HopFigure(
                sentences=tuple(texts[k] for k in slots),
                slots=slots,
                weights=weights[i][:, list(slots)].t().contiguous(),  # (n, K)
                supporting=tuple(bool(support[i, k]) for k in slots),
                question=" ".join(names[t] for t in row[m * s :] if t != 0),
                answer=names[int(data.targets[i, 0])],
                predicted=names[int(logits[i, 0].argmax())],
            )
        )
    return out


def draw_hop_examples(seen: TracedExamples, task: Task, out: Path, label: str) -> list[Path]:
    """Draw the hops of a memory network on its test questions into out; returns the files.

    Args:
        seen: test questions with the logits and trace of a memn2n or kvmemnn.
        task: as for `hop_figures_of`.
        out: the folder for memory-hops-example<i>.png and examples.txt (created).
        label: "<model> on <task>", the start of every title.
    """
    output_dir(out)
    figures = hop_figures_of(seen, task)
    paths = []
    for i, figure in enumerate(figures):
        title = f"{label}: hops, test question {i}"
        paths.append(draw_hops(figure, out / f"memory-hops-example{i}.png", title=title))
    text = "\n\n".join(
        "\n".join(
            [
                *(f"{'*' if sup else ' '} {s}" for s, sup in zip(f.sentences, f.supporting)),
                f"question: {f.question}",
                f"answer: {f.answer}",
                f"predicted: {f.predicted}",
            ]
        )
        for f in figures
    )
    (out / "examples.txt").write_text(text + "\n")
    return [*paths, out / "examples.txt"]
