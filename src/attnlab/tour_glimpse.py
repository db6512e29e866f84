"""The tour's glimpse section: the recurrent attention model finds a digit in clutter, a few pixels at a time.

The recurrent attention model (Mnih et al. 2014; attnlab.glimpse.ram) and a CNN train on generated
cluttered digits (attnlab.data.canvas over scikit-learn's bundled digits, so no data file is
needed). The section draws the glimpse path of the trained model on test canvases: numbered
glimpse centres and each scale's patch, with the digit's true box.

    glimpse_section(out, seed=0, quick=False)  ->  metrics, image paths (relative to out), an HTML fragment
"""

from __future__ import annotations

import html
from pathlib import Path

from attnlab.train import compare, load_run
from attnlab.viz.glimpse import draw_glimpse_run

FOLDER = "glimpse"  # the section's folder under the tour's
TASK = {"setting": "cluttered", "size": "60", "distractors": "4", "source": "small"}
MODELS = {"ram": {"glimpse_size": "12", "num_scales": "3", "num_glimpses": "6"},
          "image_cnn": {"pooling": "flatten", "channels": "16,32"}}
STEPS = {"ram": 2000, "image_cnn": 600}  # about a minute each on one core
LABELS = {"ram": "recurrent attention model", "image_cnn": "CNN"}


def _train(quick: bool, seed: int, steps: int) -> dict:
    if quick:
        return {"steps": "4", "eval_every": "2", "eval_size": "16", "batch_size": "8", "seed": str(seed)}
    return {"steps": str(steps), "eval_every": str(steps // 2), "eval_size": "1000", "batch_size": "64",
            "lr": "1e-3", "warmup_steps": "100", "clip_norm": "5", "seed": str(seed)}


def _fragment(result: dict) -> str:
    rows = "".join(f"<tr><td>{LABELS[m]}</td><td>{r['parameters']:,}</td><td>{r['error']:.1%}</td>"
                   f"<td>{r['seconds']:.0f}</td></tr>" for m, r in result["models"].items())
    images = "".join(f'<img src="{html.escape(p)}" alt="{html.escape(p)}">' for p in result["images"])
    return f"""<h2>Glimpses: attention that moves the eye</h2>
<p>Digits placed at random in a 60x60 canvas with four 8x8 pieces of other digits as clutter (the small digits
set that scikit-learn ships, upsampled to MNIST's size). The recurrent attention model sees
{MODELS['ram']['num_glimpses']} glimpses of 12x12 pixels at 3 scales, chosen one after the other by a policy trained
with REINFORCE; the CNN sees every pixel. Test error:</p>
<table><tr><th>model</th><th>parameters</th><th>test error</th><th>training s</th></tr>{rows}</table>
<p>Where it looked (numbered glimpse centres; a square per scale; the digit's true box in green):</p>{images}"""


def glimpse_section(out: Path, *, seed: int, quick: bool) -> dict:
    """Train RAM and a CNN on generated cluttered digits into out/glimpse and draw RAM's glimpse paths.

    Args:
        out: the tour's folder; the section writes into out/glimpse (runs/, viz/).
        seed: seeds the canvases and the training.
        quick: seconds instead of about a minute (4 steps).
    Returns:
        models (name -> error, parameters, seconds), images (paths relative to out), html (a fragment).
    """
    folder = Path(out) / FOLDER
    jobs = [job for name, values in MODELS.items() for job in compare.plan(
        "digits", [name], 1, {"task": TASK, "model": values, "train": _train(quick, seed, STEPS[name])}, None)]
    rows = compare.run_all(jobs, folder, workers=2, progress=not quick)
    path, _ = draw_glimpse_run(load_run(folder / "runs" / jobs[0]["name"]), folder / "viz", examples=8)
    result = {
        "models": {row["model"]: {"error": 1 - row["test"]["accuracy"], "parameters": row["parameters"],
                                  "seconds": row["seconds"]} for row in rows},
        "images": [str(path.relative_to(out))],
    }
    result["html"] = _fragment(result)
    return result
