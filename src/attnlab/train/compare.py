"""Train several families on one task over seeds (and a swept setting), then tabulate and plot.

    attnlab compare long_range --models lstm,transformer --seeds 3 --sweep task.distance=8,32,128

Each (model, setting, seed) is an ordinary run folder under OUT/runs/, so any of them can be
evaluated, drawn or resumed on its own. `attnlab.train.ensure` trains each: a finished run with
the same config is reused, a killed one is resumed, one given more steps or a target it has not
reached is continued, and a folder holding another run is an error.
The table gives the task's metric on the test split: mean, standard deviation, min and max over
seeds, in results.csv (one row per run), summary.csv / summary.md and a plot.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import statistics
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path
from typing import Any

from attnlab.config import closest
from attnlab.errors import ConfigError
from attnlab.models import MODELS
from attnlab.tasks import TASKS
from attnlab.train.ensure import ensure
from attnlab.train.run import resolve
from attnlab.train.vectorised import ensure_seeds


@dataclasses.dataclass(frozen=True)
class Sweep:
    """One setting varied across runs: section.key over values (strings, converted by type)."""

    section: str
    key: str
    values: tuple[str, ...]

    @staticmethod
    def parse(text: str) -> Sweep:
        lhs, sep, rhs = text.partition("=")
        section, dot, key = lhs.partition(".")
        values = tuple(v for v in rhs.split(",") if v)
        if not (sep and dot and key and values):
            raise ConfigError(f"--sweep expects section.key=v1,v2,..., got {text!r}")
        return Sweep(section, key, values)

    @property
    def name(self) -> str:
        return f"{self.section}.{self.key}"


def _model_overrides(model: str, values: dict[str, Any], models: list[str]) -> dict[str, Any]:
    """The model.* overrides that this family has; a key no listed family has is an error."""
    own = {f.name for f in dataclasses.fields(MODELS.get(model).Config)}
    for key in values:
        if not any(key in {f.name for f in dataclasses.fields(MODELS.get(m).Config)} for m in models):
            raise ConfigError(f"unknown key model.{key} for {', '.join(models)}{closest(key, sorted(own))}")
    return {k: v for k, v in values.items() if k in own}


def plan(task: str, models: list[str], seeds: int, overrides: dict, sweep: Sweep | None) -> list[dict]:
    """Every run of the comparison: its label, folder name and resolved config (checked up front)."""
    TASKS.get(task)
    if seeds < 1:
        raise ConfigError(f"--seeds must be >= 1, got {seeds}")
    jobs = []
    for value in sweep.values if sweep else [None]:
        for model in models:
            for seed in range(seeds):
                over = {s: dict(v) for s, v in overrides.items() if s != "model"}
                over["model"] = _model_overrides(model, overrides.get("model", {}), models)
                if sweep:
                    over.setdefault(sweep.section, {})[sweep.key] = value
                over.setdefault("train", {})["seed"] = seed
                config = resolve({"task": {"name": task}, "model": {"name": model}}, over)
                name = f"{model}" + (f"-{sweep.key}{value}" if sweep else "") + f"-seed{seed}"
                jobs.append({"model": model, "setting": value, "seed": seed, "name": name, "config": config})
    return jobs


NOT_METRICS = ("seconds", "best_val", "compile_seconds")  # floats of a run's summary that are not test metrics


def _row(job: dict, summary: dict) -> dict:
    """A results row: the job's labels, the run's step, time and size, and its test metrics."""
    return (
        {k: job[k] for k in ("model", "setting", "seed", "name")}
        | {key: summary.get(key) for key in ("step", "seconds", "parameters", "best_val", "stopped_early")}
        | {"test": {k: v for k, v in summary.items() if isinstance(v, float) and k not in NOT_METRICS}}
    )


def _threads() -> int:
    """The intra-op threads this process may use: torch's setting (the tour gives each of its lanes a share)."""
    import torch

    return torch.get_num_threads()


def _run_one(job: dict, folder: str, threads: int) -> dict:
    import torch

    torch.set_num_threads(threads)
    return _row(job, ensure(job["config"], folder))


def run_all(jobs: list[dict], out: Path, workers: int = 1, progress: bool = True, together: bool = False) -> list[dict]:
    """Train every job (workers processes at once), reusing finished runs; rows in job order.

    together: the seeds of each (model, setting) train as one vectorised model where the family
    allows it (`attnlab.train.vectorised`), one group after another; workers is then ignored.
    """
    runs = out / "runs"
    runs.mkdir(parents=True, exist_ok=True)
    threads = max(1, _threads() // workers)
    if together:
        groups: dict[tuple, list[dict]] = {}
        for job in jobs:
            groups.setdefault((job["model"], job["setting"]), []).append(job)
        by_name = {}
        for n, members in enumerate(groups.values(), 1):
            if progress:
                print(f"[{n}/{len(groups)}] {members[0]['model']} x{len(members)} seeds", flush=True)
            folders = [runs / job["name"] for job in members]
            summaries = ensure_seeds([job["config"] for job in members], folders, progress=progress)
            by_name.update({job["name"]: _row(job, summary) for job, summary in zip(members, summaries)})
        return [by_name[job["name"]] for job in jobs]
    if workers == 1:
        rows = []
        for n, job in enumerate(jobs, 1):
            if progress:
                print(f"[{n}/{len(jobs)}] {job['name']}", flush=True)
            rows.append(_run_one(job, str(runs / job["name"]), threads))
        return rows
    with ProcessPoolExecutor(workers, mp_context=get_context("spawn")) as pool:
        futures = [pool.submit(_run_one, job, str(runs / job["name"]), threads) for job in jobs]
        rows = []
        for n, (job, future) in enumerate(zip(jobs, futures), 1):
            rows.append(future.result())
            if progress:
                shown = ", ".join(f"{k} {v:.3f}" for k, v in rows[-1]["test"].items())
                print(f"[{n}/{len(jobs)}] {job['name']}: {shown}", flush=True)
        return rows


def summarise(rows: list[dict], metric: str, maximize: bool = True) -> list[dict]:
    """Mean, spread, min and max of the metric over seeds, per (setting, model), and the test
    metric of the seed whose best validation metric is best (`best_of_seeds`, `best_seed`)."""
    groups: dict[tuple, list[dict]] = {}
    for row in rows:
        groups.setdefault((row["setting"], row["model"]), []).append(row)
    out = []
    for (setting, model), members in groups.items():
        values = [m["test"][metric] for m in members]
        judged = [m for m in members if m.get("best_val") is not None] or members
        chosen = (max if maximize else min)(judged, key=lambda m: m.get("best_val") or 0.0)
        out.append(
            {
                "model": model,
                "setting": setting,
                "seeds": len(values),
                "mean": statistics.fmean(values),
                "std": statistics.stdev(values) if len(values) > 1 else 0.0,
                "min": min(values),
                "max": max(values),
                "seconds": statistics.fmean(m["seconds"] or 0.0 for m in members),
                "parameters": members[0]["parameters"],
                "best_of_seeds": chosen["test"][metric],  # the test metric of the seed best on validation
                "best_seed": chosen["seed"],
            }
        )
    return out


def write_results(
    out: Path,
    rows: list[dict],
    summary: list[dict],
    *,
    task: str,
    metric: str,
    sweep: Sweep | None,
    command: str,
    best_of: bool = False,
) -> dict[str, Path]:
    """results.csv, summary.csv, summary.md and results.json in out (attnlab.viz.curves.draw_results plots it)."""
    metrics = sorted({k for r in rows for k in r["test"]})
    with open(out / "results.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(
            ["model", sweep.name if sweep else "setting", "seed", *metrics, "steps", "seconds", "parameters"]
        )
        for r in rows:
            writer.writerow(
                [
                    r["model"],
                    r["setting"],
                    r["seed"],
                    *[r["test"].get(m) for m in metrics],
                    r["step"],
                    r["seconds"],
                    r["parameters"],
                ]
            )
    with open(out / "summary.csv", "w", newline="") as f:
        table = csv.DictWriter(f, fieldnames=list(summary[0]))
        table.writeheader()
        table.writerows(summary)
    markdown = markdown_table(summary, metric, sweep, best_of=best_of)
    (out / "summary.md").write_text(markdown + f"\n\nCommand: `{command}`\n")
    (out / "results.json").write_text(
        json.dumps(
            {
                "task": task,
                "metric": metric,
                "command": command,
                "sweep": sweep.name if sweep else None,
                "rows": rows,
                "summary": summary,
            },
            indent=1,
        )
    )
    return {name: out / name for name in ("results.csv", "summary.csv", "summary.md", "results.json")}


def markdown_table(summary: list[dict], metric: str, sweep: Sweep | None, best_of: bool = False) -> str:
    """Models as rows, settings as columns, cells 'mean ± std (min-max)' of the metric; with best_of,
    cells 'best (seed s; mean ± std)': the test metric of the seed best on validation."""
    settings = list(dict.fromkeys(s["setting"] for s in summary))
    models = list(dict.fromkeys(s["model"] for s in summary))
    cell = {(s["model"], s["setting"]): s for s in summary}
    head = ["model", *[f"{sweep.name}={v}" for v in settings]] if sweep else ["model", metric]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for model in models:
        cells = []
        for setting in settings:
            s = cell.get((model, setting))
            if s is None:
                cells.append("")
            elif best_of:
                cells.append(f"{s['best_of_seeds']:.3f} (seed {s['best_seed']}; {s['mean']:.3f} ± {s['std']:.3f})")
            else:
                cells.append(f"{s['mean']:.3f} ± {s['std']:.3f} ({s['min']:.3f}–{s['max']:.3f})")
        lines.append("| " + " | ".join([model, *cells]) + " |")
    note = f"{metric} on the test split: mean ± std (min–max) over {summary[0]['seeds']} seeds"
    if best_of:
        note = (
            f"{metric} on the test split of the seed with the best validation {metric}, of "
            f"{summary[0]['seeds']} seeds (that seed; mean ± std over all of them)"
        )
    return note + "\n\n" + "\n".join(lines)
