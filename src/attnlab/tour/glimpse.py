"""The tour's glimpse section: the recurrent attention model finds a digit in clutter, a few pixels at a time.

The recurrent attention model (Mnih et al. 2014; attnlab.glimpse.ram) and a CNN train on generated
cluttered digits (attnlab.data.canvas over scikit-learn's bundled digits, so no data file is
needed). RAM learns where to look by REINFORCE, slower than the CNN learns from every pixel, so
the tour also tests the reference RAM shipped in the package (`REFERENCE`: the same model and
canvases, trained longer by `python benchmarks/glimpse.py reference`) on the same test canvases,
and says which model trained live and which was loaded. The cost table counts each model's
multiply-adds as the canvas grows. Glimpse paths are drawn on test canvases: numbered glimpse
centres and each scale's patch, with the digit's true box.
"""

from __future__ import annotations

import dataclasses
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from attnlab.models import build_model
from attnlab.tour import report
from attnlab.tour.budget import Budget
from attnlab.train import Run, compare, evaluate, load_run
from attnlab.train.cost import multiply_adds
from attnlab.viz.glimpse import draw_glimpse_run

NAME = "glimpse"
TITLE = "Glimpses: attention that moves the eye"
TASK = {"setting": "cluttered", "size": "60", "distractors": "4", "source": "small"}
MODELS = {
    "ram": {"glimpse_size": "12", "num_scales": "3", "num_glimpses": "6"},
    "image_cnn": {"pooling": "flatten", "channels": "16,32"},
}
LABELS = {"ram": "recurrent attention model", "reference": "recurrent attention model (reference)", "image_cnn": "CNN"}
# A RAM trained longer on these canvases (the same task and RAM config), shipped in the package: a run
# folder (config.yaml, weights, metrics) made by `python benchmarks/glimpse.py reference` (the command
# and its steps are in docs/glimpse.md).
REFERENCE = Path(__file__).parent / "reference" / "ram-cluttered60"


COST_SIZES = (28, 60, 100, 200)  # image sides of the cost table


def _costs(reference: Run) -> dict[str, dict[int, int]]:
    """Multiply-adds of one image's forward pass at each of COST_SIZES: the reference RAM's config and the CNN's."""
    spec, ram = reference.task.spec, dataclasses.asdict(reference.config.model_config)
    out: dict[str, dict[int, int]] = {"ram": {}, "image_cnn": {}}
    for size in COST_SIZES:
        sized = replace(spec, image=(spec.image[0], size, size))
        image = torch.zeros(1, *sized.image)  # (1, c, y, x)
        out["ram"][size] = multiply_adds(build_model("ram", ram, sized), image)
        out["image_cnn"][size] = multiply_adds(build_model("image_cnn", MODELS["image_cnn"], sized), image)
    return out


def run(out: Path, budget: Budget, seed: int) -> dict[str, Any]:
    """Train RAM and a CNN on generated cluttered digits into out/glimpse, test the shipped reference RAM on
    the same test canvases, count each model's cost against the image's size and draw glimpse paths.

    Returns:
        models (name -> error, parameters, seconds, steps, trained: "live" or "loaded"), cost (model ->
        image side -> multiply-adds) and images (paths relative to out).
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
    models = {
        row["model"]: {
            "error": 1 - row["test"]["accuracy"],
            "parameters": row["parameters"],
            "seconds": row["seconds"],
            "steps": row["step"],
            "trained": "live",
        }
        for row in rows
    }
    shipped = load_run(REFERENCE)
    tested = evaluate(shipped.model, shipped.task, shipped.task.eval_set(budget.glimpse.ram.eval_size, "test"))
    test = next(r for r in shipped.metrics if r.get("split") == "test")
    models["reference"] = {
        "error": 1 - tested["accuracy"],
        "parameters": sum(p.numel() for p in shipped.model.parameters()),
        "seconds": test["seconds"],
        "steps": test["step"],
        "trained": "loaded",
    }
    live, _ = draw_glimpse_run(load_run(folder / "runs" / jobs[0]["name"]), folder / "viz", examples=8)
    loaded, _ = draw_glimpse_run(shipped, folder / "viz", examples=8, name="glimpses-reference")
    return {
        "models": models,
        "guided_steps": budget.glimpse.ram.guide_steps or 0,
        "guide_every": budget.glimpse.ram.guide_every or 0,
        "cost": _costs(shipped),
        "images": [str(path.relative_to(out)) for path in (loaded, live)],
    }


def render(result: dict[str, Any]) -> str:
    """Test error per model (which trained live, which was loaded), the cost table and the glimpse paths."""
    rows = [
        [LABELS[m], r["trained"], f"{r['steps']:,}", f"{r['parameters']:,}", f"{r['error']:.1%}", f"{r['seconds']:.0f}"]
        for m, r in result["models"].items()
    ]
    cost = result["cost"]
    sizes = list(cost["ram"])
    cost_rows = [[LABELS[m], *[f"{cost[m][n] / 1e6:.1f}" for n in sizes]] for m in cost]
    steps = result.get("guided_steps", 0)  # the live RAM's guided start, train.guide_steps
    every = result.get("guide_every", 0)  # and after it one step in this many guided, train.guide_every
    guided = (
        f" (its first {steps:,} steps guided: its glimpses at the digit, the policy imitating them"
        + (f"; after them one step in {every} guided too, which keeps the glimpses on the digit" if every else "")
        + ")"
        if steps
        else ""
    )
    return (
        report.paragraph(
            "Digits placed at random in a 60x60 canvas with four 8x8 pieces of other digits as clutter (the small "
            "digits set that scikit-learn ships, upsampled to MNIST's size). The recurrent attention model sees "
            "{glimpses} glimpses of 12x12 pixels at 3 scales, chosen one after the other by a policy trained with "
            "REINFORCE; the CNN sees every pixel. Two RAMs: one trained live in this tour{guided}, and the reference "
            "RAM shipped with attnlab (the same model trained longer on the same canvases by `python "
            "benchmarks/glimpse.py reference`, loaded here and tested on this tour's test canvases). Test error:",
            glimpses=MODELS["ram"]["num_glimpses"],
            guided=guided,
        )
        + report.table(["model", "trained", "steps", "parameters", "test error", "training s"], rows)
        + report.paragraph(
            "What one image costs as the canvas grows (millions of multiply-adds of one forward pass, counted by "
            "PyTorch): the glimpses cost the same at every size, the CNN's convolutions and its fully connected "
            "layer grow with the image's area."
        )
        + report.table(["model", *[f"{n}x{n}" for n in sizes]], cost_rows)
        + report.paragraph(
            "Where they looked, the reference RAM first, then this tour's (numbered glimpse centres; a square per "
            "scale; the digit's true box in green):"
        )
        + report.images(result["images"])
    )
