"""The translation view: a source sentence (typed, or one of the test split's), its greedy and
beam-search translations, and for each the alignment matrix of every cross-attention module.

Translating and reading the alignment are `attnlab.tasks.translation_eval.alignment`, the code
behind `attnlab translate --draw`; the model is teacher-forced on its own output under capture,
with this run's lock held.
"""

from __future__ import annotations

from typing import Any

from attnlab.explorer.discovery import ExplorerError
from attnlab.explorer.loaded import LoadedRun
from attnlab.explorer.params import Params
from attnlab.explorer.views import View
from attnlab.explorer.views.common import rounded
from attnlab.tasks.translation import TranslationTask
from attnlab.tasks.translation_eval import Alignment, alignment
from attnlab.train import Run

MAX_BEAM = 8


def applies(loaded: LoadedRun) -> bool:
    return isinstance(loaded.task, TranslationTask)


def _shown(found: Alignment) -> dict[str, Any]:
    return {
        "translation": found.translation,
        "source": found.source,
        "target": found.target,
        "layers": [rounded(w) for w in found.weights],  # per module (h, i, j)
    }


def data(loaded: LoadedRun, params: Params) -> dict[str, Any]:
    """{"source_text", "reference", "example", "beam_size", "greedy": {...}, "beam": {...}}; each of greedy
    and beam: {"translation", "source": j tokens, "target": i tokens, "layers": [(h, i, j) per module]}."""
    task = loaded.task
    assert isinstance(task, TranslationTask)
    beam = params.integer("beam", 4, 2, MAX_BEAM)
    text = params.text("text")
    reference = None
    k = -1
    if text is None:
        texts = task.split("test").texts
        k = params.integer("example", 0, 0, min(len(texts), len(loaded.examples)) - 1)
        text, reference = texts[k]
    if not task.vocabs[0].encode(text):
        raise ExplorerError(400, "text: no source tokens in it")

    cut = k >= 0  # a test example is cut to task.max_len as its scoring cuts it; typed text longer is refused

    def both(run: Run) -> tuple[Alignment, Alignment]:
        return (
            alignment(task, run.model, text, beam_size=1, truncate=cut),
            alignment(task, run.model, text, beam_size=beam, truncate=cut),
        )

    greedy, beamed = loaded.forward(both)
    return {
        "view": "translation",
        "example": k,
        "typed": reference is None,
        "source_text": text,
        "reference": reference,
        "beam_size": beam,
        "greedy": _shown(greedy),
        "beam": _shown(beamed),
    }


VIEW = View("translation", "translation", applies, data, typed="a source sentence", params=("example", "text", "beam"))
