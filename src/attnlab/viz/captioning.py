"""Where a captioning model looked at each word: the image once per word, that word's attention over it.

The figure Show, Attend and Tell made familiar (Xu et al. 2015, fig. 2-3): a row of panels, the
first the photograph alone, then one panel per generated word with alpha_t (L weights over a
(rows, cols) grid of locations) upsampled to the image's size and laid over it, brighter where the
word looked. For hard attention a panel can mark the location the word sampled instead (`picks`):
the grid cell it read, outlined.

The weights come from a trace (kind "cross" of the decoder's attention, one (b, 1, 1, L) record a
step): `caption_weights` reads them back.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
from torch import Tensor

from attnlab.core import Trace
from attnlab.tasks.base import Task
from attnlab.tasks.caption_eval import sampled_locations
from attnlab.tasks.captioning import CaptionTask
from attnlab.train.examples import TracedExamples
from attnlab.viz.heatmap import _save


def caption_weights(trace: Trace, example: int = 0) -> Tensor:
    """alpha (n, L) of one example: one row per decoded word, from the trace's "cross" records.

    Args:
        trace: a trace of a captioning decoder (teacher-forced or decoded step by step).
        example: the row of the batch.
    Returns:
        (n, L) the weights over the L locations at each of the n steps.
    """
    records = trace.select(kind="cross")
    if not records:
        raise ValueError(f"caption_weights: the trace holds no 'cross' records; paths: {trace.paths()}")
    steps = [r.weights[example].reshape(-1, r.weights.shape[-1]) for r in records]  # each (i, L)
    return torch.cat(steps)  # (n, L)


def attention_over_image(alpha: Tensor, grid: tuple[int, int], size: tuple[int, int]) -> Tensor:
    """One word's weights (L,) on a (rows, cols) grid, upsampled smoothly to size (H, W)."""
    rows, cols = grid
    if alpha.numel() != rows * cols:
        raise ValueError(f"attention_over_image: {alpha.numel()} weights do not fill a {rows} x {cols} grid")
    cells = alpha.reshape(1, 1, rows, cols).float()  # (1, 1, rows, cols)
    return F.interpolate(cells, size=size, mode="bilinear", align_corners=False)[0, 0]  # (H, W)


def caption_figure(
    image: Tensor,
    words: Sequence[str],
    alphas: Tensor,
    grid: tuple[int, int],
    *,
    picks: Sequence[int] | None = None,
    title: str | None = None,
    columns: int = 6,
) -> Figure:
    """The image, then one panel per word with its attention laid over the image.

    Args:
        image: (3, H, W) RGB or (1, H, W) grey, values in [0, 1].
        words: the caption's words (the end token included if it should get a panel).
        alphas: (n, L) with n >= len(words): each word's weights over the grid, row-major.
        grid: (rows, cols) of the L locations.
        picks: hard attention: the location each word sampled; outlined instead of a heatmap.
        title: above the figure.
        columns: panels per row.
    Returns:
        the figure (no pyplot state).
    """
    if image.dim() != 3 or image.shape[0] not in (1, 3):
        raise ValueError(f"caption_figure: image must be (3, H, W) or (1, H, W); got shape {tuple(image.shape)}")
    if alphas.dim() != 2 or alphas.shape[0] < len(words):
        raise ValueError(f"caption_figure: alphas must be (n >= {len(words)} words, L); got {tuple(alphas.shape)}")
    h, w = image.shape[1:]
    picture = image.permute(1, 2, 0).clamp(0, 1).numpy()  # (H, W, c)
    grey = picture.shape[-1] == 1
    panels = len(words) + 1
    cols = min(columns, panels)
    rows = math.ceil(panels / cols)
    fig = Figure(figsize=(2.0 * cols, 2.4 * rows))  # room for each row's word titles
    for k in range(rows * cols):
        ax = fig.add_subplot(rows, cols, k + 1)
        ax.set_axis_off()
        if k >= panels:
            continue
        ax.imshow(picture[..., 0] if grey else picture, cmap="gray" if grey else None, vmin=0, vmax=1)
        if k == 0:
            continue
        t = k - 1
        if picks is not None:
            cell_h, cell_w = h / grid[0], w / grid[1]
            row, col = divmod(int(picks[t]), grid[1])
            ax.add_patch(Rectangle((col * cell_w - 0.5, row * cell_h - 0.5), cell_w, cell_h, fill=False,
                                   edgecolor="yellow", linewidth=2))  # fmt: skip
        else:
            heat = attention_over_image(alphas[t], grid, (h, w))  # (H, W)
            ax.imshow((heat / heat.max().clamp(min=1e-12)).numpy(), cmap="magma", alpha=0.6, vmin=0, vmax=1)
        ax.set_title(words[t], fontsize=11)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def draw_caption(
    image: Tensor,
    words: Sequence[str],
    alphas: Tensor,
    grid: tuple[int, int],
    path: str | Path,
    **options: object,
) -> Path:
    """Save `caption_figure` to path (.png, .svg, or .jpg: a tenth of the PNG's bytes for a photograph);
    returns the path."""
    fig = caption_figure(image, words, alphas, grid, **options)  # type: ignore[arg-type]
    _save(fig, path)
    return Path(path)


def draw_caption_examples(seen: TracedExamples, task: Task, out: Path, label: str) -> list[Path]:
    """One figure per example of a captioning run: its decoded caption, each word's attention.

    Args:
        seen: traced examples of a captioning task (`Batch.ids` name the images), decoded greedily.
        task: the captioning task (attnlab.tasks.captioning.CaptionTask: `image`, `grid`, `words`).
        out: the folder; files are caption_<k>.png.
        label: "<model> on <task>", for the titles.
    Returns:
        the files written.
    """
    if seen.data.ids is None or not isinstance(task, CaptionTask):
        raise ValueError("draw_caption_examples: needs a captioning task whose batches name their images")
    paths = []
    for k in range(len(seen.data)):
        ids = seen.logits[k].argmax(-1).tolist()  # (n,)
        words = task.words(ids).split()
        words.append("<end>")  # the step that ended the caption looked somewhere too
        alphas = caption_weights(seen.trace, k)  # (n, L)
        image = task.image(int(seen.data.ids[k]))  # (c, H, W)
        words = words[: alphas.shape[0]]
        picks = sampled_locations(alphas) if seen.trace.select(kind="cross")[0].extra.get("sampled") else None
        paths.append(draw_caption(image, words, alphas, task.grid, out / f"caption_{k}.png", picks=picks, title=label))
    return paths
