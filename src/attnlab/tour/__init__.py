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
is a new module and a line in SECTIONS (and in LONGEST_FIRST).

Sections are independent, so the full tour trains `budget.lanes` of them at once, each in its own
process with an equal share of the cores, the longest first. The models are small: one thread
each on two sections keeps both cores busy where one section on two threads would leave much of
the second idle (a single run, the evaluations, the figures).
"""

from __future__ import annotations

import json
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path
from typing import Any, Protocol

from attnlab.errors import RunError
from attnlab.files import output_dir
from attnlab.tour import babi, captioning, copy, core, families, glimpse, machines, pretrained, report, translation
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
SECTIONS: tuple[Section, ...] = (core, families, copy, translation, babi, machines, glimpse, captioning, pretrained)
# The order lanes take them in: longest first (the full tour's section seconds), so they end together.
LONGEST_FIRST = ("families", "glimpse", "translation", "machines", "captioning", "babi", "pretrained", "copy", "core")


def run_tour(out: Path, *, seed: int = 0, quick: bool = False) -> Path:
    """Run every section into out (the QUICK budget when quick), save metrics.json; returns report.html's path."""
    out = output_dir(out)
    budget = Budget.of(quick=quick)
    start = time.perf_counter()
    done = run_sections([s.NAME for s in SECTIONS], out, budget, seed)
    metrics: dict[str, Any] = {name: result for name, (result, _) in done.items()}
    metrics["seconds"] = time.perf_counter() - start
    metrics["section_seconds"] = {name: round(took, 1) for name, (_, took) in done.items()}
    (out / METRICS).write_text(json.dumps(metrics, indent=1, default=str))
    return render_report(out)


def run_sections(names: list[str], out: Path, budget: Budget, seed: int) -> dict[str, tuple[dict[str, Any], float]]:
    """Each named section's result and seconds, in the order of names.

    budget.lanes == 1: one after another in this process. Otherwise that many at once, each in a
    spawned process with cores / lanes torch threads, taken longest first (LONGEST_FIRST).
    """
    if budget.lanes == 1:
        return {name: _run_section(name, out, budget, seed, None) for name in names}
    import torch

    threads = max(1, torch.get_num_threads() // budget.lanes)
    order = sorted(names, key=lambda n: LONGEST_FIRST.index(n) if n in LONGEST_FIRST else len(LONGEST_FIRST))
    with ProcessPoolExecutor(budget.lanes, mp_context=get_context("spawn")) as pool:
        futures = {name: pool.submit(_run_section, name, out, budget, seed, threads) for name in order}
        return {name: futures[name].result() for name in names}


def _run_section(name: str, out: Path, budget: Budget, seed: int, threads: int | None) -> tuple[dict[str, Any], float]:
    """One section's result and seconds; with threads, first limit this process's torch threads to them."""
    if threads is not None:
        import torch

        torch.set_num_threads(threads)
    section = {s.NAME: s for s in SECTIONS}[name]
    began = time.perf_counter()
    result = section.run(out, budget, seed)
    took = time.perf_counter() - began
    if budget.progress:
        print(f"tour: {name} done in {took:.0f} s", flush=True)
    return result, took


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


__all__ = ["FULL", "QUICK", "SECTIONS", "Budget", "Section", "render_report", "run_sections", "run_tour"]
