"""Alignment matrices of translation models: target words as rows, source words as columns.

Reads `attnlab.tasks.translation_eval.Alignment` (weights already taken from a trace); a module
with several heads is drawn as its head average, one panel per cross-attention layer.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from matplotlib.figure import Figure

from attnlab.viz.heatmap import _save, draw_attention

if TYPE_CHECKING:
    from attnlab.tasks.translation_eval import Alignment


def _panels(named: dict[str, Alignment]) -> list[tuple[str, Alignment, int]]:
    """(title, alignment, layer) for every layer of every named alignment."""
    return [
        (name if len(found.weights) == 1 else f"{name}, layer {layer + 1}", found, layer)
        for name, found in named.items()
        for layer in range(len(found.weights))
    ]


def draw_alignments(named: dict[str, Alignment], path: str | Path, *, title: str | None = None) -> Path:
    """One heatmap per model (and per layer) of the head-averaged cross-attention, side by side.

    Args:
        named: {model name: Alignment}; each Alignment has weights [(h, i, j)], source (j) and target (i) tokens.
        path: the image file (".png" or ".svg").
        title: the figure title.
    Returns:
        The path written.
    """
    panels = _panels(named)
    if not panels:
        raise ValueError("draw_alignments: no cross-attention weights to draw")
    width = max(len(found.source) for _, found, _ in panels)
    height = max(len(found.target) for _, found, _ in panels)
    fig = Figure(figsize=(len(panels) * (1.6 + 0.3 * width), 1.4 + 0.3 * height), dpi=100, layout="constrained")
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    for ax, (name, found, layer) in zip(axes, panels):
        matrix = found.weights[layer].mean(dim=0)  # (i, j)
        draw_attention(matrix, rows=found.target, cols=found.source, title=name, ax=ax)
        ax.set_xlabel("source")
        ax.set_ylabel("translation")
    if title:
        fig.suptitle(title)
    _save(fig, path)
    return Path(path)


def draw_alignment(found: Alignment, path: str | Path, *, title: str | None = None) -> Path:
    """The alignment matrix of one translation (one panel per cross-attention layer)."""
    return draw_alignments({"cross-attention": found}, path, title=title)
