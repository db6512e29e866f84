"""Results drawn as curves and bars: a metric per model, against a swept setting."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure

from attnlab.files import output_file

MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")
LEGEND_CHARACTERS = 55  # a panel's legend label wraps to lines of at most this many characters (7 pt, 4.2 in)


def _number(value: Any) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


MAX_TICKS = 12  # more numeric settings than this: a continuous axis, not a tick per setting


def draw_comparison(
    summary: list[dict],
    *,
    metric: str,
    x_label: str | None = None,
    title: str | None = None,
    path: str | Path | None = None,
) -> Figure:
    """A line per model of the metric's mean against the setting, with min-max bars.

    Args:
        summary: rows with keys model, setting, mean, min, max (as attnlab.train.compare makes).
        metric: the metric's name for the y axis.
        x_label: the swept setting's name; None (one setting) draws a bar per model instead.
        title: the axes title.
        path: save the figure here (".png" or ".svg").
    """
    fig = Figure(figsize=(6.4, 4.0), dpi=100)
    ax = fig.add_subplot()
    models = list(dict.fromkeys(s["model"] for s in summary))
    if x_label is None:
        rows = [next(s for s in summary if s["model"] == m) for m in models]
        means = [r["mean"] for r in rows]
        ax.bar(
            models,
            means,
            yerr=[[m - r["min"] for m, r in zip(means, rows)], [r["max"] - m for m, r in zip(means, rows)]],
            capsize=3,
            color="#4c72b0",
        )
        ax.set_xlabel("model")
    else:
        settings = list(dict.fromkeys(s["setting"] for s in summary))
        numbers = [_number(v) for v in settings]
        numeric = all(x is not None for x in numbers)
        xs: dict[Any, float] = {
            v: (x if numeric and x is not None else float(n)) for n, (v, x) in enumerate(zip(settings, numbers))
        }
        for n, model in enumerate(models):
            rows = [s for s in summary if s["model"] == model]
            x = [xs[r["setting"]] for r in rows]
            mean = [r["mean"] for r in rows]
            err = [[m - r["min"] for m, r in zip(mean, rows)], [r["max"] - m for m, r in zip(mean, rows)]]
            # distinct shapes: lines may overlap
            ax.errorbar(
                x,
                mean,
                yerr=err,
                capsize=3,
                label=model,
                marker=MARKERS[n % len(MARKERS)],
                linestyle="-" if n % 2 == 0 else "--",
            )
        if numeric and len(settings) > MAX_TICKS:  # a continuous axis (time, steps): matplotlib's own ticks
            pass
        else:
            if numeric and min(xs.values()) > 0 and max(xs.values()) / min(xs.values()) >= 8:
                ax.set_xscale("log", base=2)
            ax.set_xticks(list(xs.values()), [str(v) for v in settings])
        ax.set_xlabel(x_label)
        ax.legend(fontsize=8, ncol=2)
    ax.set_ylabel(metric)
    ax.grid(alpha=0.3)
    return _finish(fig, title, path)


def _finish(fig: Figure, title: str | None, path: str | Path | None, over_panels: bool = False) -> Figure:
    """The title (the axes', or with over_panels the figure's, above titled panels), a tight layout, and the
    file when a path is given."""
    if title and over_panels:
        fig.suptitle(title)
    elif title:
        fig.axes[0].set_title(title)
    fig.tight_layout()
    if path is not None:
        fig.savefig(output_file(path))
    return fig


def draw_results(folder: str | Path) -> Path:
    """plot.png beside a comparison's results.json (as attnlab.train.compare.write_results writes it).

    Returns:
        The figure's path, folder / "plot.png".
    """
    import json

    folder = Path(folder)
    results = json.loads((folder / "results.json").read_text())
    path = folder / "plot.png"
    draw_comparison(
        results["summary"], metric=results["metric"], x_label=results["sweep"], title=results["task"], path=path
    )
    return path


def draw_curves(
    curves: dict[str, list[tuple[float, float]]],
    *,
    y_label: str,
    x_label: str = "step",
    title: str | None = None,
    log_y: bool = False,
    path: str | Path | None = None,
) -> Figure:
    """Learning curves: a line per label through its (x, y) points, on a continuous x axis.

    Args:
        curves: label -> [(x, y), ...] in order (e.g. step, validation error).
        y_label: the y axis's name.
        x_label: the x axis's name.
        title: the axes title.
        log_y: a logarithmic y axis (errors that fall over orders of magnitude).
        path: save the figure here (".png" or ".svg").
    """
    fig = Figure(figsize=(6.4, 4.0), dpi=100)
    ax = fig.add_subplot()
    for n, (label, points) in enumerate(curves.items()):
        xs, ys = zip(*points) if points else ((), ())
        ax.plot(xs, ys, label=label, marker=MARKERS[n % len(MARKERS)], markersize=3,
                linestyle="-" if n % 2 == 0 else "--")  # fmt: skip
    if log_y:
        ax.set_yscale("log")
    ax.set_xlabel(x_label)
    ax.set_ylabel(y_label)
    ax.grid(alpha=0.3, which="both")
    if curves:
        ax.legend(fontsize=7, ncol=2)
    return _finish(fig, title, path)


def draw_curve_panels(
    panels: dict[str, dict[str, list[list[tuple[float, float]]]]],
    *,
    y_label: str,
    x_label: str = "step",
    title: str | None = None,
    log_y: bool = False,
    columns: int = 3,
    path: str | Path | None = None,
) -> Figure:
    """Learning curves in one panel per setting: a colour per label (the same in every panel), a line per run.

    Args:
        panels: panel title -> label -> runs, each [(x, y), ...] in order (e.g. a model's seeds); a label
            longer than LEGEND_CHARACTERS wraps in its legend.
        y_label, x_label: the axes' names.
        title: the figure's title.
        log_y: logarithmic y axes.
        columns: panels per row.
        path: save the figure here (".png" or ".svg").
    """
    labels = dict.fromkeys(label for runs in panels.values() for label in runs)  # in order of first appearance
    styles = {label: (f"C{n % 10}", MARKERS[n % len(MARKERS)]) for n, label in enumerate(labels)}  # colour, marker
    shown = {label: textwrap.fill(label, LEGEND_CHARACTERS, subsequent_indent="  ") for label in labels}
    rows = max(1, -(-len(panels) // columns))
    # Each legend goes under its panel, where it hides no curve: a row is as tall as its longest legend needs,
    # long labels wrapped so that a legend stays as wide as its panel.
    entries = [sum(shown[label].count("\n") + 1 for label in runs) for runs in panels.values()]
    legend_height = sum(0.14 * max(entries[r * columns : (r + 1) * columns], default=0) + 0.3 for r in range(rows))
    fig = Figure(figsize=(4.2 * columns, 3.2 * rows + 0.6 + legend_height), dpi=100)
    for n, (name, runs) in enumerate(panels.items()):
        ax = fig.add_subplot(rows, columns, n + 1)
        for label, lines in runs.items():
            colour, marker = styles[label]
            for k, points in enumerate(lines):
                xs, ys = zip(*points) if points else ((), ())
                ax.plot(xs, ys, color=colour, marker=marker, markersize=2.5, linewidth=1, alpha=0.85,
                        label=shown[label] if k == 0 else None)  # fmt: skip
        if log_y:
            ax.set_yscale("log")
        ax.set_title(name, fontsize=9)
        ax.set_xlabel(x_label, fontsize=8)
        ax.set_ylabel(y_label, fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3, which="both")
        if runs:
            ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.2), frameon=False)
    return _finish(fig, title, path, over_panels=True)
