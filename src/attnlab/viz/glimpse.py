"""Where a recurrent attention model looked: each image with its numbered path of glimpses.

The recurrent attention model (Mnih et al. 2014, arXiv:1406.6247) records, at each glimpse, the
location l_t it looked at (kind "glimpse", weights (b, 2) = (row, col) in [-1, 1]) with the
retina's glimpse_size, num_scales and scale_factor. `glimpse_paths` reads them back from a trace;
`draw_glimpses` draws a grid of images, each with its glimpse centres numbered 1..g and joined by
a line, and one square per scale around each centre (the patch extents the retina cropped).

The deep recurrent attention model (DRAM, Ba et al. 2015, arXiv:1412.7755) names several objects,
each from a few glimpses; its records also carry `label`, the index of the label a glimpse served.
`glimpse_paths` returns them (meta "labels"), and the figure draws each label's glimpses (squares
and numbers) in a colour of its own, so one sees which glimpses served which label.

Pixel centres follow attnlab.glimpse.retina's mapping, so a square drawn here covers exactly the
pixels its patch read. Figures are plain `matplotlib.figure.Figure`s (no pyplot state, no window).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from matplotlib import colormaps
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
from torch import Tensor

from attnlab.core import Trace
from attnlab.files import output_file
from attnlab.glimpse.retina import pixel_centres
from attnlab.tasks.base import Task
from attnlab.train.examples import HasTaskAndModel, TracedExamples, traced_examples


def glimpse_paths(trace: Trace) -> tuple[Tensor, dict[str, Any]]:
    """The locations of every glimpse in a trace, in order.

    Args:
        trace: a trace of one forward pass of a model that records kind "glimpse".
    Returns:
        locations (b, g, 2) (row, col) in [-1, 1], and meta: glimpse_size, num_scales,
        scale_factor, path (the recording module's path) and, where the records say which label
        each glimpse served (DRAM's), labels: g ints.
    """
    records = trace.select(kind="glimpse")
    if not records:
        raise ValueError(f"glimpse_paths: the trace holds no 'glimpse' records; paths: {trace.paths()}")
    path = records[0].path
    records = [r for r in records if r.path == path]
    locations = torch.stack([r.weights for r in records], 1)  # (b, g, 2)
    extra = records[0].extra
    meta: dict[str, Any] = {key: extra[key] for key in ("glimpse_size", "num_scales", "scale_factor")}
    if "label" in extra:
        meta["labels"] = [int(r.extra["label"]) for r in records]
    return locations, {**meta, "path": path}


def glimpse_figure(
    images: Tensor,
    locations: Tensor,
    *,
    glimpse_size: int,
    num_scales: int,
    scale_factor: int = 2,
    labels: Sequence | None = None,
    predictions: Sequence | None = None,
    boxes: Tensor | None = None,
    glimpse_labels: Sequence[int] | None = None,
    columns: int = 4,
) -> Figure:
    """A grid of images, each with its glimpse path: one visible axes per image.

    Args:
        images: (k, c, y, x) floats in [0, 1]; c == 3 is drawn in colour, otherwise channel 0 in grey.
        locations: (k, g, 2) (row, col) in [-1, 1], e.g. from `glimpse_paths`.
        glimpse_size: g of the retina, the finest patch's side.
        num_scales: patches per glimpse; one square is drawn per scale.
        scale_factor: width ratio of consecutive scales.
        labels: k true labels, shown in each panel's title as "label / predicted".
        predictions: k predicted labels.
        boxes: (k, 4) or (k, m, 4) (top, left, height, width) in pixels: where the object (each of
            the m objects) truly is, outlined.
        glimpse_labels: g ints, the label each glimpse served (DRAM's `labels` meta): each label's
            glimpses are drawn in its own colour; None: one colour ramp over the glimpses.
        columns: panels per row of the grid.
    Returns:
        The figure.
    """
    k, c, y, x = images.shape
    if locations.dim() != 3 or locations.shape[0] != k or locations.shape[2] != 2:
        raise ValueError(f"draw_glimpses: locations must be (k={k}, g, 2); got {tuple(locations.shape)}")
    if boxes is not None and (boxes.shape[0] != k or boxes.shape[-1] != 4 or boxes.dim() not in (2, 3)):
        raise ValueError(
            f"draw_glimpses: boxes must be (k={k}, 4) or (k={k}, m, 4) = (top, left, height, width); "
            f"got {tuple(boxes.shape)}"
        )
    g = locations.shape[1]
    if glimpse_labels is not None and len(glimpse_labels) != g:
        raise ValueError(f"draw_glimpses: glimpse_labels must hold g={g} labels; got {len(glimpse_labels)}")
    columns = max(1, min(columns, k))
    rows = math.ceil(k / columns)
    fig = Figure(figsize=(2.6 * columns, 3.0 * rows + 0.3))  # room for each title above its square image
    centres = pixel_centres(locations.detach().float().cpu(), y, x)  # (k, g, 2)
    sides = [glimpse_size * scale_factor**s for s in range(num_scales)]
    if glimpse_labels is None:
        colours = colormaps["autumn"](torch.linspace(0, 0.8, g).tolist())  # (g, 4), first red, last yellow
    else:
        colours = colormaps["tab10"]([label % 10 for label in glimpse_labels])  # (g, 4), one colour per label
    for i in range(k):
        ax = fig.add_subplot(rows, columns, i + 1)
        picture = images[i].detach().float().cpu()  # (c, y, x)
        if c == 3:
            ax.imshow(picture.permute(1, 2, 0).clamp(0, 1).numpy())  # (y, x, 3)
        else:
            ax.imshow(picture[0].numpy(), cmap="gray")
        ax.plot(centres[i, :, 1].numpy(), centres[i, :, 0].numpy(), color="cyan", linewidth=1, alpha=0.8)
        for t in range(g):
            row, col = centres[i, t].tolist()
            for side in sides:  # pixel p spans p - 0.5 .. p + 0.5 in imshow's coordinates
                corner = (col - side // 2 - 0.5, row - side // 2 - 0.5)
                ax.add_patch(Rectangle(corner, side, side, fill=False, edgecolor=colours[t], linewidth=1))
            ax.text(col, row, str(t + 1), color=colours[t], fontsize=8, ha="center", va="center", fontweight="bold")
        if boxes is not None:
            for top, left, height, width in boxes[i].reshape(-1, 4).tolist():
                ax.add_patch(
                    Rectangle(
                        (left - 0.5, top - 0.5),
                        width,
                        height,
                        fill=False,
                        edgecolor="lime",
                        linestyle="--",
                        linewidth=1,
                    )
                )
        if labels is not None or predictions is not None:
            label = "?" if labels is None else str(labels[i])
            predicted = "?" if predictions is None else str(predictions[i])
            ax.set_title(f"{label} / {predicted}", fontsize=9)
        ax.set_xlim(-0.5, x - 0.5)
        ax.set_ylim(y - 0.5, -0.5)
        ax.set_xticks([])
        ax.set_yticks([])
    if glimpse_labels is None:
        fig.suptitle("glimpses 1..g (label / predicted)", fontsize=9)
    else:
        fig.suptitle("glimpses 1..g, one colour per emitted label (labels / predicted)", fontsize=9)
    fig.tight_layout()
    return fig


def draw_glimpses(images: Tensor, locations: Tensor, path: str | Path, **options: Any) -> Path:
    """Draw `glimpse_figure(images, locations, **options)` into path (.png or .svg); returns path.

    options are glimpse_figure's keywords (glimpse_size and num_scales are required); parent
    folders of path are created.
    """
    fig = glimpse_figure(images, locations, **options)
    path = output_file(path)
    fig.savefig(path, dpi=100)
    return path


def draw_glimpse_examples(
    seen: TracedExamples, task: Task, out: Path, label: str = "", *, name: str = "glimpses"
) -> list[Path]:
    """The glimpse paths of a "ram" or "dram" model on its test images into out/<name>.png; returns the files.

    Args:
        seen: test images (b, c, y, x) with the logits (b, n, o) and trace (kind "glimpse"); a DRAM's
            glimpses are coloured by the answer they served, and the n answers shown side by side.
        task: names each answer in its panel's title (`Task.answer_text`, "3+7" for a pair's class) and
            renders the examples into out/<name>.txt; the digits' true boxes are drawn when the task
            knows them (`boxes("test")`, as `digits` and `digit_pairs` do).
        out: the folder.
        label: "<model> on <task>"; unused, the figure's own title says what the panels show.
        name: the files' stem.
    """
    data, logits = seen.data, seen.logits
    locations, meta = glimpse_paths(seen.trace)
    boxes = task.boxes("test")[: len(data)] if hasattr(task, "boxes") else None
    path = draw_glimpses(
        data.inputs,
        locations,
        out / f"{name}.png",
        glimpse_size=meta["glimpse_size"],
        num_scales=meta["num_scales"],
        scale_factor=meta["scale_factor"],
        labels=[task.answer_text(row) for row in data.targets],  # e.g. "3+7" for a pair's class
        predictions=[task.answer_text(row) for row in logits.argmax(-1)],
        boxes=boxes,
        glimpse_labels=meta.get("labels"),
    )
    text = "\n\n".join(task.render(data, i, logits) for i in range(len(data)))
    (out / f"{name}.txt").write_text(text + "\n")
    return [path, out / f"{name}.txt"]


def draw_glimpse_run(run: HasTaskAndModel, out: str | Path, *, examples: int = 8, name: str = "glimpses") -> list[Path]:
    """The glimpse paths of a trained "ram" or "dram" run on `examples` test images into out/<name>.png; returns the files."""
    return draw_glimpse_examples(traced_examples(run, examples), run.task, Path(out), name=name)
