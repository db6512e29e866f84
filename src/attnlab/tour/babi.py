"""The tour's memory-network section: MemN2N answers bAbI-style questions about generated stories.

An end-to-end memory network (Sukhbaatar et al. 2015; attnlab.memory.memn2n) is trained jointly
on the generated tasks 1, 2, 3, 6, 7 and 8 (attnlab.data.babi_generator), so it needs no data
files. Its hops are read back from a trace of the whole test split: per task, how often each
hop's largest weight falls on a true supporting fact; and one figure per question of story
sentences x hops.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import attnlab.models.memory  # noqa: F401  (registers memn2n)
from attnlab.errors import ConfigError
from attnlab.memory import hop_weights
from attnlab.tasks.babi import Babi
from attnlab.tour import report
from attnlab.tour.budget import Budget
from attnlab.train import Run, compare, load_run
from attnlab.train.examples import traced_examples
from attnlab.viz.runs import draw_run

NAME = "babi"
TITLE = "A memory network reads a story"
MODEL = {"embed_dim": "32", "hops": "3", "random_noise": "0.1"}


def _overrides(budget: Budget, seed: int) -> dict[str, dict[str, Any]]:
    spent = budget.babi
    task: dict[str, Any] = {"tasks": "all", "setting": "generated", "memory_size": "10", "seed": seed}
    if spent.stories is not None:
        task["generated_stories"] = spent.stories
    if spent.story_len is not None:
        task["generated_story_len"] = spent.story_len
    return {"task": task, "model": MODEL, "train": spent.train.overrides(seed)}


def _support(trained: Run) -> dict[int, dict[str, float]]:
    """Per task, per hop: the share of test questions whose largest weight is on a supporting fact."""
    task = trained.task
    if not isinstance(task, Babi):
        raise ConfigError(f"task: the supporting facts are the babi task's, not {trained.config.task!r}")
    seen = traced_examples(trained, 10**6)  # the whole test split
    return task.support_attention(hop_weights(seen.trace), task.support("test"), task.task_ids("test"))


def run(out: Path, budget: Budget, seed: int) -> dict[str, Any]:
    """Train MemN2N on generated stories into out/babi and draw its hops on three test questions.

    Returns:
        accuracy, error_per_task, support_attention (task -> hop -> share), steps, seconds,
        parameters, images (paths relative to out) and run (the run folder, relative).
    """
    (job,) = compare.plan("babi", ["memn2n"], 1, _overrides(budget, seed), None)
    folder = out / NAME
    (row,) = compare.run_all([job], folder, progress=budget.progress)
    trained = load_run(folder / "runs" / job["name"])
    drawn = draw_run(trained, folder / "viz", examples=3)
    return {
        "accuracy": row["test"]["accuracy"],
        "error_per_task": {
            int(k.removeprefix("error_qa")): v for k, v in row["test"].items() if k.startswith("error_qa")
        },
        "support_attention": _support(trained),
        "steps": row["step"],
        "seconds": row["seconds"],
        "parameters": row["parameters"],
        "images": [str(p.relative_to(out)) for p in drawn if p.suffix == ".png"],
        "run": str((folder / "runs" / job["name"]).relative_to(out)),
    }


def render(result: dict[str, Any]) -> str:
    """Test error and supporting-fact shares per task, and the hop figures."""
    tasks = sorted(result["error_per_task"], key=int)  # int keys, or their strings once saved as JSON
    support = result["support_attention"]
    hops = [k for k in next(iter(support.values()), {}) if k != "questions"]
    rows = []
    for n in tasks:
        share = support.get(n, {})
        rows.append([n, f"{result['error_per_task'][n]:.1%}", *[f"{share[k]:.0%}" for k in hops if k in share]])
    return (
        report.paragraph(
            "MemN2N ({parameters:,} parameters, 3 hops, position encoding, temporal encoding, random noise) trained "
            "jointly on generated bAbI-style tasks 1, 2, 3, 6, 7, 8 for {steps} steps in {seconds:.0f} s: test "
            "accuracy {accuracy:.1%}. The columns after the error give, per hop, how often that hop's largest "
            'weight falls on a true supporting fact of the question; "any_hop" counts a question when some hop\'s '
            "does.",
            **result,
        )
        + report.table(["task", "test error", *hops], rows)
        + report.paragraph("Each hop's weights on the story's sentences (supporting facts starred and boxed):")
        + report.images(result["images"])
    )
