"""The tour's memory-machine section: an NTM learns to copy and to recall, and is tested on longer episodes.

A Neural Turing Machine (attnlab.memory.ntm) and an LSTM train on the NTM paper's copy task with
short sequences, then run unchanged on longer ones (`attnlab.train.retarget`); the NTM also trains
on associative recall. Within the tour's budget the NTM learns to copy the lengths it saw; the
reference NTM shipped in the package (`REFERENCE`, trained on lengths 1-20 by `python
benchmarks/machines.py copy --models ntm --steps 4000 --seed 1 --runs runs/machines-seed1`, then
copied in by `python benchmarks/machines.py reference --runs runs/machines-seed1`; its config.yaml
and metrics.jsonl travel with its weights) is tested beside it at lengths up to 120. The NTMs' write and
read weightings over memory slots and steps are drawn for one longer episode: what each wrote
where, and the order it read it back.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from attnlab.tour import report
from attnlab.tour.budget import Budget, Train
from attnlab.train import Run, compare, evaluate, load_run, retarget
from attnlab.train.examples import traced_examples
from attnlab.viz.machines import draw_machine

NAME = "machines"
TITLE = "Memory that is written as well as read: a Neural Turing Machine"
COPY_TRAIN, COPY_TESTS = 8, (8, 16, 32)  # copy: trained on lengths 1..8, tested at these
RECALL_TRAIN, RECALL_TESTS = 4, (4, 6, 8)  # recall: trained on 2..4 items, tested at these
REFERENCE = Path(__file__).parent / "reference" / "ntm-copy"  # a run folder: config.yaml, weights, metrics
REFERENCE_TESTS = (20, 40, 120)  # the reference NTM (trained on lengths 1..20) is tested at these
MODELS = {
    "ntm": {"controller_size": "64", "memory_size": "40", "word_size": "10"},
    "lstm": {"embed_dim": "32", "hidden_dim": "128", "num_layers": "2"},
}


def _jobs(task: str, values: dict[str, str], models: list[str], train: Train, seed: int) -> list[dict]:
    model = {k: v for name in models for k, v in MODELS[name].items()}
    return compare.plan(task, models, 1, {"task": values, "model": model, "train": train.overrides(seed)}, None)


def _only(key: str, n: int) -> dict[str, Any]:
    """Task values that fix `key` (length, items) at n."""
    return {f"min_{key}": n, f"max_{key}": n}


def _tests(trained: Run, key: str, lengths: tuple[int, ...], size: int) -> dict[int, float]:
    """Bit errors per sequence of the trained weights on `size` test episodes at each length."""
    out = {}
    for n in lengths:
        longer = retarget(trained, **_only(key, n))
        torch.manual_seed(0)
        out[n] = evaluate(longer.model, longer.task, longer.task.eval_set(size, "test"))["bit_errors"]
    return out


def _draw(trained: Run, key: str, n: int, path: Path, title: str) -> Path:
    """The NTM's weightings on one test episode of length (or items) n."""
    longer = retarget(trained, **_only(key, n))
    seen = traced_examples(longer, 1)
    return draw_machine(seen.trace, seen.data, seen.logits, path, title=title)


def run(out: Path, budget: Budget, seed: int) -> dict[str, Any]:
    """Train the NTM and an LSTM on copy, the NTM on recall, test them longer, draw the NTM's weights.

    Returns:
        copy (model -> length -> bit errors), recall (ntm -> items -> bit errors), parameters, seconds,
        steps and images (paths relative to out).
    """
    folder = out / NAME
    spent = budget.machines
    copy_jobs = _jobs("ntm_copy", {"max_length": str(COPY_TRAIN)}, ["ntm", "lstm"], spent.copy, seed)
    recall_jobs = _jobs("ntm_associative_recall", {"max_items": str(RECALL_TRAIN)}, ["ntm"], spent.recall, seed)
    copy_rows = compare.run_all(copy_jobs, folder / "copy", workers=2, progress=budget.progress)
    recall_rows = compare.run_all(recall_jobs, folder / "recall", progress=budget.progress)
    copy_runs = {j["model"]: load_run(folder / "copy" / "runs" / j["name"]) for j in copy_jobs}
    recall_run = load_run(folder / "recall" / "runs" / recall_jobs[0]["name"])
    shipped = load_run(REFERENCE)
    viz = folder / "viz"
    drawn = [
        _draw(copy_runs["ntm"], "length", COPY_TESTS[1], viz / "ntm-copy.png", f"NTM copy, length {COPY_TESTS[1]}"),
        _draw(
            shipped,
            "length",
            REFERENCE_TESTS[1],
            viz / "ntm-reference.png",
            f"reference NTM copy, length {REFERENCE_TESTS[1]}",
        ),
        _draw(recall_run, "items", RECALL_TESTS[1], viz / "ntm-recall.png", f"NTM recall, {RECALL_TESTS[1]} items"),
    ]
    return {
        "copy": {m: _tests(r, "length", COPY_TESTS, spent.tested) for m, r in copy_runs.items()},
        "reference": {
            "tests": _tests(shipped, "length", REFERENCE_TESTS, spent.tested),
            "trained": shipped.config.task_config.max_length,
            "steps": next(r["step"] for r in shipped.metrics if r.get("split") == "test"),
            "parameters": sum(p.numel() for p in shipped.model.parameters()),
            "slots": shipped.config.model_config.memory_size,
        },
        "recall": {"ntm": _tests(recall_run, "items", RECALL_TESTS, spent.tested)},
        "parameters": {row["model"]: row["parameters"] for row in copy_rows},
        "seconds": sum(row["seconds"] for row in copy_rows + recall_rows),
        "steps": next(row["step"] for row in copy_rows if row["model"] == "ntm"),
        "images": [str(p.relative_to(out)) for p in drawn],
    }


def _row(name: str, errors: dict[Any, float]) -> list[object]:
    return [name, *[f"{v:.2f}" for v in errors.values()]]


def render(result: dict[str, Any]) -> str:
    """Bit errors at each tested length, for copy (this tour's NTM and LSTM, the reference NTM) and
    recall; the NTMs' weightings."""
    copy, recall, shipped = result["copy"], result["recall"], result["reference"]
    return (
        report.paragraph(
            "The NTM ({ntm:,} parameters) and an LSTM ({lstm:,}) trained on copying random 8-bit vectors of lengths "
            "1-{trained}, then ran unchanged on longer sequences. Bit errors per sequence (the NTM paper's metric; "
            "lower is better; a length-n sequence has 8n bits, so guessing gets 4n wrong):",
            **result["parameters"],
            trained=COPY_TRAIN,
        )
        + report.table(
            ["copy", *[f"length {n}" for n in copy["ntm"]]], [_row("NTM", copy["ntm"]), _row("LSTM", copy["lstm"])]
        )
        + report.paragraph(
            "An NTM learns late and suddenly: its copy errors stay near chance for about a thousand steps, then fall "
            "to almost none within a few hundred (this one stopped at step {steps}, once its validation errors were "
            "under 0.05 bits a sequence or its budget was spent). Trained on lengths 1-{trained} only, it has little "
            "reason to find the program that works at any length. The reference NTM shipped with attnlab "
            "({parameters:,} parameters, {slots} memory slots) was trained on lengths 1-{ref_trained} for "
            "{ref_steps} steps (<code>python benchmarks/machines.py copy --models ntm --steps 4000 --seed 1</code>, "
            "docs/machines.md); its weights, tested here on sequences it never saw:",
            steps=result["steps"],
            trained=COPY_TRAIN,
            parameters=shipped["parameters"],
            ref_trained=shipped["trained"],
            ref_steps=shipped["steps"],
            slots=shipped["slots"],
        )
        + report.table(["copy", *[f"length {n}" for n in shipped["tests"]]], [_row("reference NTM", shipped["tests"])])
        + report.paragraph(
            "Associative recall (items of three 6-bit vectors; give the item after the query), "
            "trained on 2-{trained} items:",
            trained=RECALL_TRAIN,
        )
        + report.table(["recall", *[f"{n} items" for n in recall["ntm"]]], [_row("NTM", recall["ntm"])])
        + report.paragraph(
            "Where the NTMs wrote and read, slot by step, on one longer episode: this tour's NTM on copy, the "
            "reference NTM on copy (it writes the vectors to consecutive slots and reads them back along the same "
            "path), and this tour's NTM on recall:"
        )
        + report.images(result["images"])
    )
