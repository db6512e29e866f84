"""The memory-network view: the story's sentences x hops for one question, supporting facts marked.

The rows are `attnlab.viz.memory.hop_figures_of`'s: the non-empty memory slots as text, each hop's
weight on each, and the task's supporting facts. A typed question replaces the example's question
words (the story stays); it has no known answer or supporting facts.
"""

from __future__ import annotations

from typing import Any

import torch

from attnlab.explorer.loaded import LoadedRun
from attnlab.explorer.params import Params
from attnlab.explorer.views import View
from attnlab.explorer.views.common import picked, rounded, token_ids
from attnlab.spec import PAD
from attnlab.tasks.base import Batch
from attnlab.viz.memory import hop_figures_of


def applies(loaded: LoadedRun) -> bool:
    return "memory" in loaded.kinds and len(loaded.task.spec.layout) == 3


def data(loaded: LoadedRun, params: Params) -> dict[str, Any]:
    """{"example", "typed", "sentences", "slots", "weights": (n, K), "supporting", "question", "answer", "predicted"}."""
    k, batch, rows = picked(loaded, params)
    question = params.text("question")
    typed_rows: torch.Tensor | None = rows
    if question is not None:
        m, s, q = loaded.task.spec.layout
        words = question.lower().replace("?", " ").replace(".", " ")
        ids = token_ids(loaded.task.token_names(), words, "question", q)
        inputs = batch.inputs.clone()  # (1, m*s + q)
        inputs[0, m * s :] = PAD
        inputs[0, m * s : m * s + len(ids)] = torch.tensor(ids, dtype=inputs.dtype)
        batch, typed_rows = Batch(inputs, batch.targets), None
    seen, task = loaded.traced(batch, typed_rows)
    figure = hop_figures_of(seen, task, "test")[0]
    return {
        "view": "hops",
        "example": k,
        "typed": question is not None,
        "sentences": list(figure.sentences),
        "slots": list(figure.slots),
        "weights": rounded(figure.weights),  # (n, K)
        "hops": int(figure.weights.shape[1]),
        "supporting": list(figure.supporting),
        "question": figure.question,
        "answer": None if question is not None else figure.answer,
        "predicted": figure.predicted,
    }


VIEW = View(
    "hops",
    "memory hops",
    applies,
    data,
    typed="a question (words of the story's vocabulary)",
    params=("example", "question"),
)
