"""The tour's captioning section: Show, Attend and Tell writes captions of digit scenes, looking at each digit.

Generated scenes (attnlab.data.scenes) hold two or three of scikit-learn's 8 x 8 digits on a grid
of cells; their captions list the digits left to right ("a 3 left of a 7"). The decoder (soft
attention over the cells, attnlab.models.captioning) is trained on them, decodes the test scenes
greedily, and its attention is read back from a trace: for every digit word, whether the peak of
alpha_t lies on the cell of the digit the word names. No data is needed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from attnlab.tasks.captioning import CaptionTask
from attnlab.tour import report
from attnlab.tour.budget import Budget
from attnlab.train import compare, load_run
from attnlab.train.examples import traced_examples
from attnlab.viz.captioning import caption_weights
from attnlab.viz.runs import draw_run

NAME = "captioning"
TITLE = "Show, Attend and Tell: each digit word looks at its digit"
MODEL = {"embed_dim": "64", "hidden_dim": "128", "attn_dim": "64", "dropout": "0.1", "doubly_stochastic": "0"}


def run(out: Path, budget: Budget, seed: int) -> dict[str, Any]:
    """Train soft attention on generated scenes into out/captioning; score where digit words look.

    Returns:
        the run's test metrics (bleu1..4, cider), steps, seconds, parameters, and attention:
        digit words whose peak attention is on the named digit (hits, words, rate).
    """
    over = {"task": {"scenes": str(budget.captioning.scenes)}, "model": MODEL,
            "train": budget.captioning.train.overrides(seed)}  # fmt: skip
    (job,) = compare.plan("caption", ["show_attend_tell"], 1, over, None)
    (row,) = compare.run_all([job], out / NAME, progress=budget.progress)
    trained = load_run(out / NAME / "runs" / job["name"])
    task = trained.task
    assert isinstance(task, CaptionTask)  # the run's task is "caption"
    seen = traced_examples(trained, budget.captioning.scored, "test")
    assert seen.data.ids is not None  # captioning batches name their images
    hits = words = 0
    for k, image in enumerate(seen.data.ids.tolist()):
        got, scored = task.digit_hits(image, caption_weights(seen.trace, k))
        hits, words = hits + got, words + scored
    draw_run(trained, out / NAME / "viz", examples=2)
    return {
        **row["test"],
        "steps": row["step"],
        "seconds": row["seconds"],
        "parameters": row["parameters"],
        "attention": {"hits": hits, "words": words, "rate": round(hits / max(words, 1), 3)},
    }


def render(result: dict[str, Any]) -> str:
    """Scores, the attention's hit rate, and two captions drawn word by word."""
    return report.paragraph(
        "{parameters:,} parameters, {steps} steps in {seconds:.0f} s. Greedy captions of unseen scenes: BLEU-4 "
        "{bleu4:.1f}, CIDEr {cider:.2f}. For {attention[rate]:.0%} of the {attention[words]} digit words the "
        "attention's peak lies on the digit the word names (chance: one cell in twelve).",
        **result,
    ) + report.images([f"{NAME}/viz/caption_0.png", f"{NAME}/viz/caption_1.png"], alt="each word's attention")
