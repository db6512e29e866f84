"""The captioning view (Show, Attend and Tell, Xu et al. 2015): one test image, its captions, and
where each decoded word looked.

The greedy caption is the model's own forward pass under capture (`loaded.traced`): one "cross"
record (b, 1, 1, L) per decoding step, read back by `attnlab.viz.captioning.caption_weights` as
alpha (n, L), row t the weights of the step that wrote word t. A beam caption (?beam=2..8) is
decoded and its weights read by `attnlab.tasks.caption_eval.caption_attention` (teacher-forcing the
model on the caption it chose), as `caption_eval.looked` does for image files.
The page lays alpha_t, reshaped to the task's (rows, cols) grid and upsampled, over the image.
"""

from __future__ import annotations

from typing import Any

from torch import Tensor

from attnlab.data.subword import EOS
from attnlab.explorer.discovery import ExplorerError
from attnlab.explorer.loaded import LoadedRun
from attnlab.explorer.params import Params
from attnlab.explorer.views import View
from attnlab.explorer.views.common import picked, rounded
from attnlab.explorer.views.glimpse import MAX_PIXELS
from attnlab.tasks.caption_eval import caption_attention
from attnlab.tasks.captioning import CaptionTask
from attnlab.train import Run
from attnlab.viz.captioning import caption_weights

MAX_BEAM = 8
END = "<end>"  # the word shown for the step that wrote EOS (it looked somewhere too)


def applies(loaded: LoadedRun) -> bool:
    return isinstance(loaded.task, CaptionTask)


def _shown(task: CaptionTask, ids: list[int], alphas: Tensor | None) -> dict[str, Any]:
    """One caption for the page: its text, one word per decoding step, each step's weights and peak cell.

    Args:
        ids: the word id of each step, EOS included where written.
        alphas: (n, L) each step's weights, n == len(ids); None for a model that does not attend.
    """
    words = [END if i == EOS else word for i, word in zip(ids, task.vocab.tokens(ids))]
    cols = task.grid[1]
    peaks = [] if alphas is None else [list(divmod(int(cell), cols)) for cell in alphas.argmax(-1)]  # n x [r, c]
    return {
        "caption": task.words(ids),
        "words": words,
        "alphas": None if alphas is None else rounded(alphas),  # (n, L)
        "peaks": peaks,
    }


def _greedy_ids(logits: Tensor) -> list[int]:
    """The decoded ids of one row's greedy logits (n, o), up to and including the first EOS."""
    ids = logits.argmax(-1).tolist()  # (n,)
    return ids[: ids.index(EOS) + 1] if EOS in ids else ids


def _beam_search(task: CaptionTask, run: Run, inputs: Tensor, beam_size: int) -> tuple[list[int], Tensor | None]:
    """The beam caption of one image and the weights of each of its steps.

    Args:
        inputs: (1, L, D) the image's annotation vectors.
    Returns:
        the word id of each step (EOS included where written) and alphas (i, L), None for a model
        that does not attend.
    """
    ((ids, alphas),) = caption_attention(task, run.model, inputs, beam_size=beam_size)
    return ids, alphas  # (i,), (i, L) or None


def data(loaded: LoadedRun, params: Params) -> dict[str, Any]:
    """{"example", "image_id", "image": (c, H, W), "grid": [rows, cols], "references", "attends",
    "greedy": {...}, "beam_size", "beam": {...} or None}; each caption: {"caption", "words": n,
    "alphas": (n, L) or None, "peaks": n x [row, col]}."""
    task = loaded.task
    assert isinstance(task, CaptionTask)
    beam = params.integer("beam", 0, 2, MAX_BEAM) if params.has("beam") else None
    k, batch, rows = picked(loaded, params)
    if batch.ids is None:
        raise ExplorerError(422, "example: this caption run's test examples do not name their images")
    image = task.image(int(batch.ids[0]))  # (c, H, W)
    if image.numel() > MAX_PIXELS:
        c, h, w = image.shape
        raise ExplorerError(413, f"example: images of {c}x{h}x{w} are larger than the page takes ({MAX_PIXELS} values)")
    seen, _ = loaded.traced(batch, rows)
    ids = _greedy_ids(seen.logits[0])
    attends = bool(seen.trace.select(kind="cross"))
    alphas = caption_weights(seen.trace, 0)[: len(ids)] if attends else None  # (n, L)
    shown_beam = None
    if beam is not None:
        size = beam  # an int, for the closure
        beam_ids, beam_alphas = loaded.forward(lambda run: _beam_search(task, run, batch.inputs, size))
        shown_beam = _shown(task, beam_ids, beam_alphas)
    return {
        "view": "caption",
        "example": k,
        "image_id": int(batch.ids[0]),
        "image": rounded(image.float(), 3),  # (c, H, W)
        "grid": list(task.grid),
        "references": task.references(batch)[0],
        "attends": attends,
        "greedy": _shown(task, ids, alphas),
        "beam_size": beam,
        "beam": shown_beam,
    }


VIEW = View("caption", "caption", applies, data, params=("example", "beam"))
