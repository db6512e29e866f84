"""The tour's families section: who reaches how far, and who can read a sequence backwards.

Every family trains by the same loop on `long_range` (a class token at least `distance` tokens
before the query, at three distances: within, at and beyond a CNN's reach) and on `reverse` (ten
symbols, written last first). The transformer's attention is drawn on one test example of each.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from attnlab.tour import report
from attnlab.tour.budget import Budget, Train
from attnlab.train import compare, load_run
from attnlab.viz.curves import draw_results
from attnlab.viz.runs import draw_run

NAME = "families"
TITLE = "Who reaches how far"
DISTANCES = ("4", "16", "64")  # long_range settings: within, at and beyond a CNN's reach
FAMILIES = ("mlp", "cnn", "rnn", "lstm", "transformer")
SEQUENCE_FAMILIES = ("mlp", "cnn", "lstm", "bilstm", "transformer")


def _compare(
    out: Path, name: str, models: tuple[str, ...], sweep: compare.Sweep | None, train: Train, seed: int, budget: Budget
) -> tuple[dict[str, Any], list[dict]]:
    """Train `models` on task `name` into out/name; its summary (with sequence accuracy) and the jobs."""
    over = {"train": train.overrides(seed)}
    jobs = compare.plan(name, list(models), 1, over, sweep)
    folder = out / name
    rows = compare.run_all(jobs, folder, workers=2, progress=budget.progress)
    summary = compare.summarise(rows, "accuracy")
    for entry, exact in zip(summary, compare.summarise(rows, "sequence_accuracy")):
        entry["sequence_accuracy"] = exact["mean"]
    compare.write_results(
        folder, rows, summary, task=name, metric="accuracy", sweep=sweep, command=f"attnlab tour (section {name})"
    )
    draw_results(folder)
    result = {"summary": summary, "plot": f"{name}/plot.png", "runs": [f"{name}/runs/{j['name']}" for j in jobs]}
    return result, jobs


def _draw(out: Path, name: str, job: dict) -> list[str]:
    """The transformer's attention on one test example of its run, into out/name/viz (png paths, relative)."""
    drawn = draw_run(load_run(out / name / "runs" / job["name"]), out / name / "viz", examples=1)
    return [str(p.relative_to(out)) for p in drawn if p.suffix == ".png"]


def run(out: Path, budget: Budget, seed: int) -> dict[str, Any]:
    """Train every family on long_range (swept over DISTANCES) and reverse; draw the transformers.

    Returns:
        long_range and reverse, each: summary (compare.summarise rows with sequence_accuracy), plot,
        runs and attention (paths relative to out).
    """
    sweep = compare.Sweep("task", "distance", DISTANCES)
    long_range, far_jobs = _compare(out, "long_range", FAMILIES, sweep, budget.families.long_range, seed, budget)
    reverse, reverse_jobs = _compare(out, "reverse", SEQUENCE_FAMILIES, None, budget.families.reverse, seed, budget)
    far = next(j for j in far_jobs if j["model"] == "transformer" and j["setting"] == DISTANCES[-1])
    long_range["attention"] = _draw(out, "long_range", far)
    reverse["attention"] = _draw(out, "reverse", next(j for j in reverse_jobs if j["model"] == "transformer"))
    return {"long_range": long_range, "reverse": reverse}


def _rows(summary: list[dict], extra: str | None) -> list[list[object]]:
    """Families as rows: parameters, the metric per setting in order, and `extra`'s mean when given."""
    settings = list(dict.fromkeys(s["setting"] for s in summary))
    rows = []
    for model in dict.fromkeys(s["model"] for s in summary):
        mine = [s for v in settings for s in summary if s["model"] == model and s["setting"] == v]
        cells = [f"{s['mean']:.1%}" for s in mine] + ([f"{mine[0][extra]:.1%}"] if extra else [])
        rows.append([model, f"{mine[0]['parameters']:,}", *cells])
    return rows


def render(result: dict[str, Any]) -> str:
    """Accuracy tables, the curves and the transformer's attention, for both tasks."""
    far, rev = result["long_range"], result["reverse"]
    settings = list(dict.fromkeys(s["setting"] for s in far["summary"]))
    return (
        "<h3>A dependency at growing distance</h3>\n"
        + report.paragraph(
            "The class token sits at least <i>distance</i> tokens before the query (task <code>long_range</code>). "
            "Test accuracy of each family (chance 25%), one seed, same loop, same budget, about 10<sup>5</sup> "
            "parameters each. The feed-forward net (MLP) sees every position but as unrelated features; the CNN "
            "sees only its receptive field (21 tokens here); recurrent nets must carry the token across the gap; "
            "attention looks it up in one step."
        )
        + report.table(["family", "parameters", *[f"distance {v}" for v in settings]], _rows(far["summary"], None))
        + report.images([far["plot"]], alt="accuracy against distance")
        + report.paragraph("Where the transformer's query looks, at the longest distance:")
        + report.images(far["attention"])
        + "<h3>Reading one way: reverse a sequence</h3>\n"
        + report.paragraph(
            "Ten symbols, then write them last first (task <code>reverse</code>): accuracy per symbol and per "
            "whole sequence. A unidirectional recurrent net must hold all ten in its state and give the first one "
            "back last; attention reads each from its position."
        )
        + report.table(
            ["family", "parameters", "accuracy", "sequence_accuracy"], _rows(rev["summary"], "sequence_accuracy")
        )
        + report.images([rev["plot"]], alt="reverse accuracy")
        + report.paragraph("Where the transformer looks while writing each answer:")
        + report.images(rev["attention"])
    )
