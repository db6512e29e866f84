"""The tour's glimpse section: the recurrent attention model finds a digit in clutter, a few pixels at a time.

The recurrent attention model (Mnih et al. 2014; attnlab.glimpse.ram) and a CNN train on generated
cluttered digits (attnlab.data.canvas over scikit-learn's bundled digits, so no data file is
needed). The glimpse path of the trained model is drawn on test canvases: numbered glimpse
centres and each scale's patch, with the digit's true box.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from attnlab.tour import report
from attnlab.tour.budget import Budget
from attnlab.train import compare, load_run
from attnlab.viz.glimpse import draw_glimpse_run

NAME = "glimpse"
TITLE = "Glimpses: attention that moves the eye"
TASK = {"setting": "cluttered", "size": "60", "distractors": "4", "source": "small"}
MODELS = {
    "ram": {"glimpse_size": "12", "num_scales": "3", "num_glimpses": "6"},
    "image_cnn": {"pooling": "flatten", "channels": "16,32"},
}
LABELS = {"ram": "recurrent attention model", "image_cnn": "CNN"}


def run(out: Path, budget: Budget, seed: int) -> dict[str, Any]:
    """Train RAM and a CNN on generated cluttered digits into out/glimpse and draw RAM's glimpse paths.

    Returns:
        models (name -> error, parameters, seconds) and images (paths relative to out).
    """
    folder = out / NAME
    train = {"ram": budget.glimpse.ram, "image_cnn": budget.glimpse.cnn}
    jobs = [
        job
        for name, values in MODELS.items()
        for job in compare.plan(
            "digits", [name], 1, {"task": TASK, "model": values, "train": train[name].overrides(seed)}, None
        )
    ]
    rows = compare.run_all(jobs, folder, workers=2, progress=budget.progress)
    path, _ = draw_glimpse_run(load_run(folder / "runs" / jobs[0]["name"]), folder / "viz", examples=8)
    return {
        "models": {
            row["model"]: {
                "error": 1 - row["test"]["accuracy"],
                "parameters": row["parameters"],
                "seconds": row["seconds"],
            }
            for row in rows
        },
        "images": [str(path.relative_to(out))],
    }


def render(result: dict[str, Any]) -> str:
    """Test error per model and RAM's glimpse paths."""
    rows = [
        [LABELS[m], f"{r['parameters']:,}", f"{r['error']:.1%}", f"{r['seconds']:.0f}"]
        for m, r in result["models"].items()
    ]
    return (
        report.paragraph(
            "Digits placed at random in a 60x60 canvas with four 8x8 pieces of other digits as clutter (the small "
            "digits set that scikit-learn ships, upsampled to MNIST's size). The recurrent attention model sees "
            "{glimpses} glimpses of 12x12 pixels at 3 scales, chosen one after the other by a policy trained with "
            "REINFORCE; the CNN sees every pixel. Test error:",
            glimpses=MODELS["ram"]["num_glimpses"],
        )
        + report.table(["model", "parameters", "test error", "training s"], rows)
        + report.paragraph(
            "Where it looked (numbered glimpse centres; a square per scale; the digit's true box in green):"
        )
        + report.images(result["images"])
    )
