"""Attention weights as heatmaps: one matrix, or a grid of layers x heads.

Rows are queries (i), columns are keys (j); weights are probabilities, so the colour scale runs
from 0 to 1 unless asked otherwise, and every panel of a grid shares it, so panels compare.

Figures are built with `matplotlib.figure.Figure`, never through pyplot: nothing is registered
globally, nothing needs closing, no backend is switched, and no window opens. Saving picks the
renderer from the file suffix (Agg for .png, the SVG renderer for .svg).

This module only reads tensors and traces (`attnlab.core.Trace`); it never reaches into modules.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, cast

import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.image import AxesImage
from torch import Tensor

from attnlab.core.trace import Trace
from attnlab.files import output_file

if TYPE_CHECKING:
    from attnlab.pretrained import SentenceAttention

# Grids label their outer axes with tokens only up to this many; beyond it the ticks go off.
MAX_GRID_LABELS = 40
_SUFFIXES = (".png", ".svg")


def draw_attention(
    weights: Tensor | np.ndarray,
    *,
    rows: Sequence[str] | None = None,
    cols: Sequence[str] | None = None,
    title: str | None = None,
    ax: Axes | None = None,
    path: str | Path | None = None,
    vmin: float = 0.0,
    vmax: float | None = 1.0,
    dpi: int = 100,
) -> Figure:
    """Draw one attention matrix as a heatmap with token labels and a colorbar.

    Args:
        weights: (i, j) attention weights, a tensor or an array; rows are queries, columns keys.
        rows: i labels for the queries (y axis), e.g. the target tokens.
        cols: j labels for the keys (x axis, drawn rotated), e.g. the source tokens.
        title: the axes title.
        ax: draw into these axes (and their figure); by default a new figure sized to the matrix.
        path: save the figure here; ".png" or ".svg" by suffix; parent folders are created.
        vmin: the colour of 0 weight.
        vmax: the colour of full weight; None scales to the largest value.
        dpi: resolution of a new figure (and of a saved PNG).
    Returns:
        The figure drawn into (the new one, or `ax.figure`).
    """
    values = _matrix(weights, "weights", "draw_attention")  # (i, j)
    i, j = values.shape
    _check_labels("draw_attention", "rows", rows, i, "i", values.shape)
    _check_labels("draw_attention", "cols", cols, j, "j", values.shape)
    _check_suffix("draw_attention", path)
    if ax is None:
        fig = Figure(figsize=_matrix_size(i, j, rows, cols), dpi=dpi, layout="constrained")
        ax = fig.add_subplot()
    else:
        fig = cast(Figure, ax.figure)  # attnlab draws into axes of a Figure, never of a SubFigure
    image = ax.imshow(values, cmap="viridis", vmin=vmin, vmax=vmax, aspect="auto", interpolation="nearest")
    _label_axis(ax, "x", cols)
    _label_axis(ax, "y", rows)
    ax.set_xlabel("keys (j)")
    ax.set_ylabel("queries (i)")
    if title is not None:
        ax.set_title(title)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    if path is not None:
        _save(fig, path)
    return fig


def draw_heads(
    layers: Sequence[Tensor | np.ndarray] | Tensor | np.ndarray,
    *,
    tokens: Sequence[str] | None = None,
    query_tokens: Sequence[str] | None = None,
    path: str | Path | None = None,
    title: str | None = None,
    vmax: float | None = 1.0,
    dpi: int = 100,
) -> Figure:
    """Draw every head of every layer as small multiples: one row per layer, one column per head.

    Args:
        layers: a list with one (h, i, j) tensor or array per layer, or one (L, h, i, j) tensor;
            every layer needs the same number of heads.
        tokens: j labels for the keys, drawn under the bottom row.
        query_tokens: i labels for the queries, drawn left of the first column; default `tokens`.
        path: save the figure here; ".png" or ".svg" by suffix; parent folders are created.
        title: the figure title.
        vmax: the colour of full weight, shared by every panel; None scales to the largest value
            over all layers and heads.
        dpi: resolution of the figure (and of a saved PNG).
    Returns:
        The figure: L * h heatmap axes in row-major order, then one shared colorbar axes.
    Labels are drawn only when there are at most MAX_GRID_LABELS of them; otherwise, and when none
    are given, the ticks are off.
    """
    grids = _layers(layers)  # L arrays of (h, i, j)
    if query_tokens is None:
        query_tokens = tokens
    for n, grid in enumerate(grids):
        shape = grid.shape[1:]
        _check_labels("draw_heads", "tokens", tokens, shape[1], f"j of layer {n}", shape)
        _check_labels("draw_heads", "query_tokens", query_tokens, shape[0], f"i of layer {n}", shape)
    _check_suffix("draw_heads", path)
    num_layers, num_heads = len(grids), grids[0].shape[0]
    if vmax is None:
        vmax = max(float(np.nanmax(g)) for g in grids)
    show_cols = tokens is not None and len(tokens) <= MAX_GRID_LABELS
    show_rows = query_tokens is not None and len(query_tokens) <= MAX_GRID_LABELS
    panel = 1.6 if not (show_cols or show_rows) else max(1.6, 0.11 * max(len(tokens or ()), len(query_tokens or ())))
    fig = Figure(figsize=(panel * num_heads + 1.0, panel * num_layers + 0.4), dpi=dpi, layout="constrained")
    axes = fig.subplots(num_layers, num_heads, squeeze=False)  # (L, h) grid of Axes
    image: AxesImage | None = None
    for layer, grid in enumerate(grids):
        for head in range(num_heads):
            ax = axes[layer, head]
            image = ax.imshow(grid[head], cmap="viridis", vmin=0.0, vmax=vmax, aspect="auto", interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if layer == 0:
                ax.set_title(f"head {head}", fontsize=9)
            if head == 0:
                ax.set_ylabel(f"layer {layer}", fontsize=9)
                if show_rows:
                    _label_axis(ax, "y", query_tokens, fontsize=7)
            if layer == num_layers - 1 and show_cols:
                _label_axis(ax, "x", tokens, fontsize=7)
    assert image is not None  # every layer has at least one head
    fig.colorbar(image, ax=axes, shrink=0.8)
    if title is not None:
        fig.suptitle(title)
    if path is not None:
        _save(fig, path)
    return fig


def layers_from_trace(trace: Trace, *, kind: str = "self", example: int = 0, step: int = -1) -> list[Tensor]:
    """The per-layer attention of one example from a trace, ready for `draw_heads`.

    Each module path that recorded `kind` is one layer, in the order the paths first recorded.
    A path called several times inside the capture block (a recurrent step, a decoding step, or
    the model run twice) has several steps; `step` picks one of them by Python index, by default
    the last, i.e. the most recent call.

    Args:
        trace: a `Trace` from `attnlab.core.capture`.
        kind: which records to use ("self", "cross", ...).
        example: the batch item to draw.
        step: which call of each path to use; -1 = the last.
    Returns:
        A list with one (h, i, j) CPU tensor per layer.
    """
    records = [r for r in trace.records if r.kind == kind]
    if not records:
        kinds = list(dict.fromkeys(r.kind for r in trace.records))
        recorded = f"the kinds recorded were {kinds}" if kinds else "nothing was recorded"
        raise ValueError(f"layers_from_trace: no records of kind {kind!r}; {recorded}")
    by_path: dict[str, list] = {}
    for record in records:
        by_path.setdefault(record.path, []).append(record)
    layers = []
    for path, steps in by_path.items():
        if not -len(steps) <= step < len(steps):
            raise ValueError(
                f"layers_from_trace: step must index the {len(steps)} calls recorded at {path!r}; got {step}"
            )
        weights = steps[step].weights
        if weights.dim() != 4:
            raise ValueError(
                f"layers_from_trace: weights at {path!r} (kind {kind!r}) must be (b, h, i, j); "
                f"got shape {tuple(weights.shape)}"
            )
        b = weights.shape[0]
        if not -b <= example < b:
            raise ValueError(f"layers_from_trace: example must index the batch of {b} at {path!r}; got {example}")
        layers.append(weights[example].detach().cpu())  # (h, i, j)
    return layers


# ---------------------------------------------------------------- helpers


def _to_numpy(x: Tensor | np.ndarray | Sequence[Sequence[float]]) -> np.ndarray:
    if isinstance(x, Tensor):
        return x.detach().to("cpu", torch.float32).numpy()
    return np.asarray(x, dtype=np.float32)


def _matrix(x: Tensor | np.ndarray, arg: str, fn: str) -> np.ndarray:
    values = _to_numpy(x)
    if values.ndim != 2:
        raise ValueError(f"{fn}: {arg} must be 2-D (i, j); got shape {values.shape}")
    return values


def _layers(layers: Sequence[Tensor | np.ndarray] | Tensor | np.ndarray) -> list[np.ndarray]:
    if isinstance(layers, (Tensor, np.ndarray)):
        if layers.ndim != 4:
            raise ValueError(
                f"draw_heads: layers as one tensor must be 4-D (L, h, i, j); got shape {tuple(layers.shape)}"
            )
        layers = list(layers)
    if len(layers) == 0:
        raise ValueError("draw_heads: layers is empty; expected at least one (h, i, j) tensor")
    grids = [_to_numpy(layer) for layer in layers]
    for n, grid in enumerate(grids):
        if grid.ndim != 3:
            raise ValueError(f"draw_heads: layers[{n}] must be 3-D (h, i, j); got shape {grid.shape}")
        if grid.shape[0] != grids[0].shape[0]:
            raise ValueError(
                f"draw_heads: layers[{n}] must have the {grids[0].shape[0]} heads of layers[0]; got shape {grid.shape}"
            )
    return grids


def _check_labels(
    fn: str, arg: str, labels: Sequence[str] | None, expected: int, axis: str, shape: tuple[int, ...]
) -> None:
    if labels is not None and len(labels) != expected:
        raise ValueError(
            f"{fn}: {arg} must have one label per {axis}: expected {expected}, got {len(labels)} "
            f"(weights of shape {tuple(shape)})"
        )


def _check_suffix(fn: str, path: str | Path | None) -> None:
    if path is not None and Path(path).suffix.lower() not in _SUFFIXES:
        raise ValueError(f"{fn}: path must end in one of {_SUFFIXES}; got {str(path)!r}")


def _matrix_size(i: int, j: int, rows: Sequence[str] | None, cols: Sequence[str] | None) -> tuple[float, float]:
    """Inches for a new single-matrix figure: about square cells, room for labels and colorbar."""
    cell = 0.28
    width = min(14.0, max(3.0, cell * j)) + 1.2 + (0.6 if rows else 0.0)
    height = min(14.0, max(2.5, cell * i)) + 0.6 + (0.6 if cols else 0.0)
    return width, height


def _label_axis(ax: Axes, which: str, labels: Sequence[str] | None, fontsize: float = 8) -> None:
    if labels is None:
        return
    ticks = range(len(labels))
    names = [str(s) for s in labels]
    if which == "x":
        ax.set_xticks(ticks, names, rotation=90, fontsize=fontsize)
    else:
        ax.set_yticks(ticks, names, fontsize=fontsize)


def _save(fig: Figure, path: str | Path) -> None:
    path = output_file(path)
    fig.savefig(path, format=path.suffix.lower().lstrip("."))


def draw_sentence_attention(
    att: SentenceAttention, out: str | Path, *, layer: int | None = None, head: int | None = None
) -> list[Path]:
    """Save the grid of every layer and head of a sentence's attention, plus one PNG per selected head.

    Args:
        att: an attnlab.pretrained.SentenceAttention (tokens, weights (L, h, t, t), select()).
        out: the folder for the figures.
        layer, head: the heads drawn one by one (None = all of that axis; both None = none).
    Returns:
        The paths written: attention_heads.png, then attention_layer{l}_head{n}.png per selected head.
    """
    out = Path(out)
    grid = out / "attention_heads.png"
    draw_heads(list(att.weights), tokens=att.tokens, path=grid, title=att.sentence)
    paths = [grid]
    for lay, hd in att.select(layer, head) if (layer is not None or head is not None) else []:
        path = out / f"attention_layer{lay}_head{hd}.png"
        draw_attention(
            att.weights[lay, hd], rows=att.tokens, cols=att.tokens, title=f"layer {lay} head {hd}", path=path
        )
        paths.append(path)
    return paths
