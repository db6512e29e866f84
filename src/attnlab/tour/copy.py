"""The tour's copy section: a decoder-only transformer learns to copy, and one head does the copying.

The LM (rotary positions) reads ten symbols and writes them again, decoding greedily with a KV
cache. Its attention on one test example is read back from a trace: per layer and head, the share
of the copy positions' attention that falls on the source sequence; the largest is the copying head.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from attnlab.tour import report
from attnlab.tour.budget import Budget
from attnlab.train import compare, load_run
from attnlab.train.examples import traced_examples
from attnlab.viz import draw_attention
from attnlab.viz.runs import draw_run, stacks_from_trace

NAME = "copy"
TITLE = "A decoder-only transformer learns to copy"
TASK = {"length": "10", "symbols": "8"}
MODEL = {"positions": "rope"}


def run(out: Path, budget: Budget, seed: int) -> dict[str, Any]:
    """Train the LM on copy into out/copy, find the copying head and draw it (out/copy/copy_head.png).

    Returns:
        the run's test metrics (accuracy, sequence_accuracy, ...), steps, seconds, parameters and
        copy_head (layer, head, weight_on_source).
    """
    over = {"task": TASK, "model": MODEL, "train": budget.copy.train.overrides(seed)}
    (job,) = compare.plan("copy", ["lm"], 1, over, None)
    (row,) = compare.run_all([job], out / NAME, progress=budget.progress)
    trained = load_run(out / NAME / "runs" / job["name"])
    seen = traced_examples(trained, 1)
    (layers,) = stacks_from_trace(seen.trace).values()  # L x (b, h, t + n - 1, t + n - 1)
    length = trained.config.task_config.length
    t = trained.task.spec.seq_len
    answer_rows = slice(t - 1, t - 1 + length)  # the queries that predict the copy
    back = torch.stack([w[0, :, answer_rows, :length].sum(-1).mean(-1) for w in layers])  # (L, h)
    layer, head = divmod(int(back.argmax()), back.shape[1])
    names = trained.task.token_names()
    tokens = [names[int(i)] for i in seen.data.inputs[0]] + [names[int(i)] for i in seen.data.targets[0][:-1]]
    draw_attention(
        layers[layer][0, head],
        rows=tokens,
        cols=tokens,
        path=out / NAME / "copy_head.png",
        title=f"layer {layer} head {head}: each copied symbol looks back at its source",
    )
    draw_run(trained, out / NAME / "viz", examples=1)
    return {
        **row["test"],
        "steps": row["step"],
        "seconds": row["seconds"],
        "parameters": row["parameters"],
        "copy_head": {"layer": layer, "head": head, "weight_on_source": round(float(back.max()), 3)},
    }


def render(result: dict[str, Any]) -> str:
    """Accuracy and the copying head, with its figure."""
    return report.paragraph(
        "{parameters:,} parameters, {steps} steps in {seconds:.0f} s: greedy copy accuracy {accuracy:.1%} per "
        "symbol, {sequence_accuracy:.1%} per sequence (KV-cache decoding). Layer {copy_head[layer]}, head "
        "{copy_head[head]} puts {copy_head[weight_on_source]:.0%} of the copy positions' attention on the source "
        "sequence: the head that copies.",
        **result,
    ) + report.images([f"{NAME}/copy_head.png"], alt="the copying head")
