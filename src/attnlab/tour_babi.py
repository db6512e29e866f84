"""The tour's memory-network section: MemN2N answers bAbI-style questions about generated stories.

An end-to-end memory network (Sukhbaatar et al. 2015; attnlab.memory.memn2n) is trained jointly
on the generated tasks 1, 2, 3, 6, 7 and 8 (attnlab.data.babi_generator), so it needs no data
files. The section then reads its hops back from a trace: per task, how often each hop's largest
weight falls on a true supporting fact, and one figure per question of story sentences x hops.

    babi_section(out, seed=0, quick=False)  ->  metrics, image paths (relative to out), an HTML fragment
"""

from __future__ import annotations

import html
from pathlib import Path

import torch

import attnlab.models.memory  # noqa: F401  (registers memn2n)
from attnlab.core import capture
from attnlab.memory import hop_weights
from attnlab.train import compare, load_run
from attnlab.viz.runs import draw_run

FOLDER = "babi"  # the section's folder under the tour's


def _overrides(seed: int, quick: bool) -> dict:
    task = {"tasks": "all", "setting": "generated", "memory_size": "10", "seed": str(seed)}
    model = {"embed_dim": "32", "hops": "3", "random_noise": "0.1"}
    if quick:
        task.update(generated_stories="25", generated_story_len="10")
        train = {"steps": "4", "eval_every": "2", "eval_size": "1000", "batch_size": "16"}
    else:
        train = {"steps": "6000", "eval_every": "500", "eval_size": "2000", "batch_size": "32"}
    train.update(lr="0.01", warmup_steps="0", clip_norm="40", seed=str(seed))
    return {"task": task, "model": model, "train": train}


@torch.no_grad()
def _support(run) -> dict[int, dict[str, float]]:
    test = run.task.eval_set(10**6, "test")
    with capture(run.model) as trace:
        run.model(test.inputs)
    return run.task.support_attention(hop_weights(trace), run.task.support("test"), run.task.task_ids("test"))


def _fragment(result: dict) -> str:
    tasks = sorted(result["error_per_task"])
    hops = [k for k in next(iter(result["support_attention"].values()), {}) if k != "questions"]
    head = "".join(f"<th>{html.escape(k)}</th>" for k in hops)
    rows = []
    for n in tasks:
        share = result["support_attention"].get(n, {})
        cells = "".join(f"<td>{share[k]:.0%}</td>" for k in hops if k in share)
        rows.append(f"<tr><td>{n}</td><td>{result['error_per_task'][n]:.1%}</td>{cells}</tr>")
    images = "".join(f'<img src="{html.escape(p)}" alt="{html.escape(p)}">' for p in result["images"])
    return f"""<h2>A memory network reads a story</h2>
<p>MemN2N ({result['parameters']:,} parameters, 3 hops, position encoding, temporal encoding, random noise) trained
jointly on generated bAbI-style tasks 1, 2, 3, 6, 7, 8 for {result['steps']} steps in {result['seconds']:.0f} s:
test accuracy {result['accuracy']:.1%}. The columns after the error give, per hop, how often that hop's largest
weight falls on a true supporting fact of the question; "any_hop" counts a question when some hop's does.</p>
<table><tr><th>task</th><th>test error</th>{head}</tr>{''.join(rows)}</table>
<p>Each hop's weights on the story's sentences (supporting facts starred and boxed):</p>{images}"""


def babi_section(out: Path, *, seed: int, quick: bool) -> dict:
    """Train MemN2N on generated stories into out/babi and draw its hops on three test questions.

    Args:
        out: the tour's folder; the section writes into out/babi (runs/, viz/).
        seed: seeds the stories and the training.
        quick: seconds instead of about a minute (tiny stories, 4 steps).
    Returns:
        accuracy, error_per_task, support_attention (task -> hop -> share), steps, seconds,
        parameters, images (paths relative to out), run (the run folder, relative), html (a fragment).
    """
    (job,) = compare.plan("babi", ["memn2n"], 1, _overrides(seed, quick), None)
    folder = Path(out) / FOLDER
    (row,) = compare.run_all([job], folder, progress=not quick)
    run = load_run(folder / "runs" / job["name"])
    drawn = draw_run(run, folder / "viz", examples=3)
    result = {
        "accuracy": row["test"]["accuracy"],
        "error_per_task": {int(k.removeprefix("error_qa")): v for k, v in row["test"].items() if k.startswith("error_qa")},
        "support_attention": _support(run),
        "steps": row["step"],
        "seconds": row["seconds"],
        "parameters": row["parameters"],
        "images": [str(p.relative_to(out)) for p in drawn if p.suffix == ".png"],
        "run": str((folder / "runs" / job["name"]).relative_to(out)),
    }
    result["html"] = _fragment(result)
    return result
