"""The head view of transformer families: every layer and head of every attention stack.

The trace's records are grouped by `attnlab.viz.runs.stacks_from_trace` ('<stack> <kind>' -> one
(b, h, I, J) tensor per layer, decoding steps merged back into full matrices), and labelled as
`attnlab viz` labels them: the input tokens, the decoded answers, or both in a row. The page
draws each (layer, head) as lines from query tokens (left) to key tokens (right), weighted by
attention, and all of them as a layers x heads grid of small heatmaps.
"""

from __future__ import annotations

from typing import Any

import torch

from attnlab.explorer.discovery import ExplorerError
from attnlab.explorer.loaded import LoadedRun
from attnlab.explorer.params import Params
from attnlab.explorer.views import View
from attnlab.explorer.views.common import picked, rounded, token_ids
from attnlab.spec import PAD
from attnlab.tasks.base import Batch
from attnlab.tasks.captioning import CaptionTask
from attnlab.viz.runs import _axis_labels, stacks_from_trace

KINDS = ("self", "cross", "hopfield")  # kind "spatial" has its own view (views/spatial.py)
MAX_VALUES = 2_000_000  # weights sent per request (layers x heads x queries x keys summed over stacks)


def applies(loaded: LoadedRun) -> bool:
    # a captioning decoder's "cross" steps are weights over image locations: views/caption.py draws them
    return any(kind in loaded.kinds for kind in KINDS) and not isinstance(loaded.task, CaptionTask)


def typed_batch(loaded: LoadedRun, text: str) -> Batch:
    """Typed token names -> a batch of one, left-padded to the task's length (as the tasks pad)."""
    spec = loaded.task.spec
    if not spec.tokens or spec.layout or spec.eos_id is not None:
        raise ExplorerError(400, f"text: task {loaded.run.config.task!r} takes no typed input here; pick an example")
    ids = token_ids(loaded.task.token_names(), text, "text", spec.seq_len)
    inputs = torch.full((1, spec.seq_len), PAD, dtype=torch.long)  # (1, t)
    inputs[0, spec.seq_len - len(ids) :] = torch.tensor(ids, dtype=torch.long)
    targets = torch.zeros(1, spec.answer_len, dtype=torch.long)  # (1, n): unknown answers
    return Batch(inputs, targets)


def data(loaded: LoadedRun, params: Params) -> dict[str, Any]:
    """{"example", "typed", "text", "stacks": [{"name", "kind", "rows", "cols", "layers": (L, h, I, J)}]}."""
    text = params.text("text")
    if text is None:
        k, batch, rows = picked(loaded, params)
        seen, task = loaded.traced(batch, rows)
    else:
        k, batch = -1, typed_batch(loaded, text)
        seen, task = loaded.traced(batch, None)
    names = task.token_names() if task.spec.tokens else []
    predicted = seen.logits.argmax(-1)  # (1, n)
    if task.spec.tokens:
        inputs = [names[int(t)] for t in seen.data.inputs[0]]
        answers = [names[int(t)] for t in predicted[0]]
    else:  # float inputs: positions stand in for tokens
        inputs, answers = [str(p) for p in range(seen.data.inputs.shape[1])], []
    stacks, total = [], 0
    for name, layers in stacks_from_trace(seen.trace).items():
        kind = name.rsplit(" ", 1)[-1]
        if kind not in KINDS:
            continue
        grid = torch.stack([layer[0] for layer in layers])  # (L, h, I, J)
        total += grid.numel()
        if total > MAX_VALUES:
            raise ExplorerError(413, f"example: the attention is too large to send ({total} weights)")
        rows_, cols = _axis_labels(name, tuple(grid.shape[-2:]), inputs, answers)
        i, j = grid.shape[-2:]
        stacks.append(
            {
                "name": name,
                "kind": kind,
                "rows": rows_ if len(rows_) == i else [str(p) for p in range(i)],
                "cols": cols if len(cols) == j else [str(p) for p in range(j)],
                "layers": rounded(grid),
            }
        )
    return {
        "view": "heads",
        "example": k,
        "typed": text is not None,
        "text": task.render(seen.data, 0, seen.logits),
        "stacks": stacks,
    }


VIEW = View("heads", "heads", applies, data, typed="token names separated by spaces", params=("example", "text"))
