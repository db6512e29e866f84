"""The tour: the main job. On generated data, in minutes on a CPU, it shows the attention core,
trains every family on the tasks that tell them apart, and looks inside the winners.

    report = run_tour(Path("tour"))          # every section, then report.html
    render_report(Path("tour"))              # report.html again from metrics.json, no training

Writes into one folder: metrics.json (each section's results under its name, the seconds spent
and each section's seconds under "section_seconds"), report.html, the figures the report shows, and every training run (runs/...), each of
which `attnlab eval`, `attnlab viz` and `load_run` can open.

A section is a module with NAME, TITLE, `run(out, budget, seed) -> dict` (trains and measures
within its part of the budget; the result must be JSON) and `render(result) -> str` (an HTML
fragment from the saved result only, written with the helpers of attnlab.tour.report). Adding one
is a new module and a line in SECTIONS.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Protocol

from attnlab.errors import RunError
from attnlab.tour import babi, copy, core, families, glimpse, machines, pretrained, report, translation
from attnlab.tour.budget import FULL, QUICK, Budget

METRICS = "metrics.json"
REPORT = "report.html"


class Section(Protocol):
    """What the tour asks of a section module."""

    NAME: str  # its key in metrics.json and its id in report.html
    TITLE: str  # its heading in report.html

    def run(self, out: Path, budget: Budget, seed: int) -> dict[str, Any]: ...

    def render(self, result: dict[str, Any]) -> str: ...


# In the report's order, which is also the order of training.
SECTIONS: tuple[Section, ...] = (core, families, copy, translation, babi, machines, glimpse, pretrained)


def run_tour(out: Path, *, seed: int = 0, quick: bool = False) -> Path:
    """Run every section into out (the QUICK budget when quick), save metrics.json; returns report.html's path."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    budget = Budget.of(quick=quick)
    start = time.perf_counter()
    metrics: dict[str, Any] = {}
    seconds: dict[str, float] = {}
    for section in SECTIONS:
        began = time.perf_counter()
        metrics[section.NAME] = section.run(out, budget, seed)
        seconds[section.NAME] = round(time.perf_counter() - began, 1)
        if budget.progress:
            print(f"tour: {section.NAME} done in {seconds[section.NAME]:.0f} s", flush=True)
    metrics["seconds"] = time.perf_counter() - start
    metrics["section_seconds"] = seconds
    (out / METRICS).write_text(json.dumps(metrics, indent=1, default=str))
    return render_report(out)


def render_report(out: Path) -> Path:
    """Write out/report.html from out/metrics.json alone: the sections found there, in SECTIONS' order.

    Raises:
        RunError: out holds no metrics.json.
    """
    out = Path(out)
    if not (out / METRICS).is_file():
        raise RunError(f"{out}: no {METRICS}; run the tour into it first (attnlab tour --out {out})")
    metrics = json.loads((out / METRICS).read_text())
    parts = [report.section(s.NAME, s.TITLE, s.render(metrics[s.NAME])) for s in SECTIONS if s.NAME in metrics]
    path = out / REPORT
    path.write_text(report.page(parts, seconds=metrics["seconds"]))
    return path


__all__ = ["FULL", "QUICK", "SECTIONS", "Budget", "Section", "render_report", "run_tour"]
