"""Figures of the attention probes (attnlab.probes): what one row of a head looks at, which heads
pick a pronoun's antecedent, a measure by layer, and 2-D projections of contextual word vectors.

The measures come from attnlab.probes (Clark et al. 2019's head-as-antecedent-picker probe; Wiedemann
et al. 2019's nearest-neighbour view of word senses); this module only draws arrays it is given.
Like attnlab.viz.heatmap: plain `matplotlib.figure.Figure`s (no pyplot state, no window), saved
as .png or .svg by the path's suffix.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from matplotlib.image import AxesImage
from torch import Tensor

from attnlab.viz.heatmap import _check_suffix, _save, _to_numpy

CANDIDATE = "tab:orange"  # bars of the candidate antecedents
ANSWER = "tab:red"  # the bar of the true antecedent, when given
OTHER = "tab:blue"  # every other bar
_MARKERS = ("o", "^", "s", "D", "v", "P")


def draw_token_bars(
    rows: Sequence[tuple[Sequence[str], Tensor | np.ndarray]],
    *,
    titles: Sequence[str] | None = None,
    highlight: Sequence[Collection[int]] | None = None,
    answers: Sequence[int | None] | None = None,
    ylabel: str = "weight",
    title: str | None = None,
    path: str | Path | None = None,
    dpi: int = 100,
) -> Figure:
    """One bar chart per row: the weight a query puts on each token (one attention row per panel).

    Args:
        rows: (tokens, weights) per panel; weights is (t,) with one value per token.
        titles: a title per panel (e.g. the sentence).
        highlight: per panel, token indices drawn in CANDIDATE colour (e.g. the candidates).
        answers: per panel, the token index drawn in ANSWER colour (e.g. the true antecedent), or None.
        ylabel: the y axis label of every panel.
        title: the figure title.
        path: save here (.png or .svg); parent folders are created.
    Returns:
        The figure, one axes per row.
    """
    if not rows:
        raise ValueError("draw_token_bars: rows is empty; expected at least one (tokens, weights)")
    values = [_to_numpy(w) for _, w in rows]
    for n, ((tokens, _), v) in enumerate(zip(rows, values)):
        if v.ndim != 1 or len(v) != len(tokens):
            raise ValueError(
                f"draw_token_bars: rows[{n}] needs one weight per token: {len(tokens)} tokens, "
                f"weights of shape {v.shape}"
            )
    for arg, given in (("titles", titles), ("highlight", highlight), ("answers", answers)):
        if given is not None and len(given) != len(rows):
            raise ValueError(f"draw_token_bars: {arg} must have one entry per row ({len(rows)}); got {len(given)}")
    _check_suffix("draw_token_bars", path)
    width = max(8.0, 0.45 * max(len(t) for t, _ in rows) + 1.5)
    fig = Figure(figsize=(width, 2.3 * len(rows) + 0.4), dpi=dpi, layout="constrained")
    axes = fig.subplots(len(rows), 1, squeeze=False)[:, 0]
    for n, (ax, (tokens, _), v) in enumerate(zip(axes, rows, values)):
        marked = set(highlight[n]) if highlight is not None else set()
        answer = answers[n] if answers is not None else None
        colours = [ANSWER if k == answer else CANDIDATE if k in marked else OTHER for k in range(len(tokens))]
        ax.bar(range(len(tokens)), v, color=colours)
        ax.set_xticks(range(len(tokens)), [str(t) for t in tokens], rotation=60, fontsize=8)
        ax.set_ylabel(ylabel, fontsize=8)
        if titles is not None:
            ax.set_title(titles[n], fontsize=9)
    if title is not None:
        fig.suptitle(title, fontsize=10)
    if path is not None:
        _save(fig, path)
    return fig


def draw_head_grids(
    grids: Mapping[str, Tensor | np.ndarray | Sequence[Sequence[float]]],
    *,
    mark: tuple[int, int] | None = None,
    vmin: float = 0.25,
    vmax: float = 0.75,
    label: str = "accuracy (chance 0.5)",
    path: str | Path | None = None,
    dpi: int = 100,
) -> Figure:
    """Side-by-side (layers x heads) grids of a per-head score, sharing one diverging colour scale.

    Args:
        grids: panel title -> (L, h) values (e.g. the probe's accuracy on two splits).
        mark: (layer, head) outlined on the first panel (e.g. the head chosen there).
        vmin, vmax: the ends of the colour scale (centre it on chance).
        label: the colorbar's label.
        path: save here (.png or .svg).
    Returns:
        The figure: one axes per grid, then the colorbar's.
    """
    if not grids:
        raise ValueError("draw_head_grids: grids is empty")
    arrays = {name: _to_numpy(g) for name, g in grids.items()}
    for name, a in arrays.items():
        if a.ndim != 2:
            raise ValueError(f"draw_head_grids: grid {name!r} must be 2-D (layers, heads); got shape {a.shape}")
    _check_suffix("draw_head_grids", path)
    fig = Figure(figsize=(4.5 * len(arrays), 3.6), dpi=dpi, layout="constrained")
    axes = fig.subplots(1, len(arrays), squeeze=False)[0]
    image: AxesImage | None = None
    for ax, (name, a) in zip(axes, arrays.items()):
        image = ax.imshow(a, cmap="RdBu", vmin=vmin, vmax=vmax, interpolation="nearest")
        ax.set_xticks(range(a.shape[1]))
        ax.set_yticks(range(a.shape[0]))
        ax.set_xlabel("head")
        ax.set_ylabel("layer")
        ax.set_title(name, fontsize=9)
    if mark is not None:
        layer, head = mark
        axes[0].scatter([head], [layer], marker="s", facecolors="none", edgecolors="k", s=120)
    assert image is not None  # grids is not empty
    fig.colorbar(image, ax=list(axes), shrink=0.8, label=label)
    if path is not None:
        _save(fig, path)
    return fig


def draw_layer_curves(
    series: Mapping[str, Sequence[float]],
    *,
    references: Mapping[str, float] | None = None,
    chance: float | None = 0.5,
    xlabel: str = "layer",
    ylabel: str = "accuracy",
    ylim: tuple[float, float] | None = None,
    path: str | Path | None = None,
    dpi: int = 100,
) -> Figure:
    """One line per series over layers 0, 1, ..., with dashed reference levels and a chance line.

    Args:
        series: legend label -> one value per layer.
        references: legend label -> a level drawn as a dashed horizontal line (e.g. a baseline).
        chance: the chance level, a grey line; None draws none.
        ylim: the y range; None lets matplotlib choose.
        path: save here (.png or .svg).
    """
    if not series:
        raise ValueError("draw_layer_curves: series is empty")
    _check_suffix("draw_layer_curves", path)
    fig = Figure(figsize=(6, 3.4), dpi=dpi, layout="constrained")
    ax = fig.add_subplot()
    for n, (name, values) in enumerate(series.items()):
        ax.plot(range(len(values)), list(values), f"{_MARKERS[n % len(_MARKERS)]}-", label=name)
    for n, (name, level) in enumerate((references or {}).items()):
        ax.axhline(level, color=f"C{len(series) + n}", ls="--", label=name)
    if chance is not None:
        ax.axhline(chance, color="grey", lw=1, label="chance")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if ylim is not None:
        ax.set_ylim(*ylim)
    ax.legend(fontsize=7)
    if path is not None:
        _save(fig, path)
    return fig


def draw_projections(
    points: Sequence[Sequence[Tensor | np.ndarray]],
    groups: Sequence[Sequence[str]],
    *,
    row_labels: Sequence[str] | None = None,
    col_titles: Sequence[str] | None = None,
    path: str | Path | None = None,
    dpi: int = 100,
) -> Figure:
    """A grid of 2-D scatter plots: row r, column c shows points[r][c], one marker per group.

    Args:
        points: per row, per column, an (n_r, 2) array (e.g. one word's vectors at one layer,
            projected to 2-D); every column of a row shows the same n_r items.
        groups: per row, n_r legend labels (e.g. "bank (river)"); items with one label share a marker.
        row_labels: a y label per row.
        col_titles: a title per column, drawn over the top row.
        path: save here (.png or .svg).
    Returns:
        The figure: rows x columns axes in row-major order; the last column carries the legends.
    """
    if not points or not points[0]:
        raise ValueError("draw_projections: points is empty; expected rows of (n, 2) arrays")
    cols = len(points[0])
    if len(groups) != len(points):
        raise ValueError(f"draw_projections: groups must have one entry per row ({len(points)}); got {len(groups)}")
    arrays = [[_to_numpy(p) for p in row] for row in points]
    for r, row in enumerate(arrays):
        if len(row) != cols:
            raise ValueError(f"draw_projections: row {r} has {len(row)} panels, row 0 has {cols}")
        for c, a in enumerate(row):
            if a.ndim != 2 or a.shape != (len(groups[r]), 2):
                raise ValueError(
                    f"draw_projections: points[{r}][{c}] must be ({len(groups[r])}, 2) for the row's groups; "
                    f"got shape {a.shape}"
                )
    _check_suffix("draw_projections", path)
    fig = Figure(figsize=(2.6 * cols + 0.6, 2.3 * len(arrays)), dpi=dpi, layout="constrained")
    axes = fig.subplots(len(arrays), cols, squeeze=False)
    for r, row in enumerate(arrays):
        names = list(dict.fromkeys(groups[r]))
        for c, a in enumerate(row):
            ax = axes[r, c]
            for g, name in enumerate(names):
                keep = [k for k, label in enumerate(groups[r]) if label == name]
                ax.scatter(a[keep, 0], a[keep, 1], s=14, marker=_MARKERS[g % len(_MARKERS)], label=name)
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0 and col_titles is not None:
                ax.set_title(col_titles[c], fontsize=9)
            if c == 0 and row_labels is not None:
                ax.set_ylabel(row_labels[r], fontsize=9)
            if c == cols - 1:
                ax.legend(fontsize=7, loc="best")
    if path is not None:
        _save(fig, path)
    return fig
