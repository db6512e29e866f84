"""The tour's memory-machine section: an NTM learns to copy and to recall, and is tested on longer episodes.

A Neural Turing Machine (attnlab.memory.ntm) and an LSTM train on the NTM paper's copy task with
short sequences, then run unchanged on longer ones (`attnlab.train.retarget`); the NTM also trains
on associative recall. The section draws the NTM's write and read weightings over memory slots
and steps for one longer episode: what it wrote where, and the order it read it back.

    machines_section(out, seed=0, quick=False)  ->  metrics, image paths (relative to out), an HTML fragment
"""

from __future__ import annotations

import html
from pathlib import Path

import torch

from attnlab.core import capture
from attnlab.train import compare, evaluate, load_run, retarget
from attnlab.viz.machines import draw_machine

FOLDER = "machines"  # the section's folder under the tour's
COPY_TRAIN, COPY_TESTS = 8, (8, 16, 32)  # copy: trained on lengths 1..8, tested at these
RECALL_TRAIN, RECALL_TESTS = 4, (4, 6, 8)  # recall: trained on 2..4 items, tested at these
MODELS = {"ntm": {"controller_size": "64", "memory_size": "40", "word_size": "10"},
          "lstm": {"embed_dim": "32", "hidden_dim": "128", "num_layers": "2"}}


def _train(quick: bool, seed: int, steps: int) -> dict:
    if quick:
        return {"steps": "4", "eval_every": "2", "eval_size": "16", "batch_size": "8", "seed": str(seed)}
    return {"steps": str(steps), "eval_every": str(steps // 2), "eval_size": "128", "batch_size": "32",
            "lr": "3e-3", "warmup_steps": "50", "clip_norm": "10", "weight_decay": "0", "seed": str(seed)}


def _jobs(task: str, values: dict, models: list[str], quick: bool, seed: int, steps: int) -> list[dict]:
    model = {k: v for name in models for k, v in MODELS[name].items()}
    return compare.plan(task, models, 1, {"task": values, "model": model, "train": _train(quick, seed, steps)}, None)


def _tests(run, key: str, lengths: tuple[int, ...], size: int) -> dict[int, float]:
    out = {}
    for n in lengths:
        longer = retarget(run, **{f"min_{key}": n, f"max_{key}": n})
        torch.manual_seed(0)
        out[n] = evaluate(longer.model, longer.task, longer.task.eval_set(size, "test"))["bit_errors"]
    return out


def _draw(run, key: str, n: int, path: Path, title: str) -> Path:
    longer = retarget(run, **{f"min_{key}": n, f"max_{key}": n})
    batch = longer.task.eval_set(1, "test")
    with torch.no_grad(), capture(longer.model) as trace:
        logits = longer.model(batch.inputs)
    return draw_machine(trace, batch, logits, path, title=title)


def _fragment(result: dict) -> str:
    def row(name: str, errors: dict) -> str:
        return f"<tr><td>{name}</td>" + "".join(f"<td>{v:.2f}</td>" for v in errors.values()) + "</tr>"

    copy_head = "".join(f"<th>length {n}</th>" for n in COPY_TESTS)
    recall_head = "".join(f"<th>{n} items</th>" for n in RECALL_TESTS)
    images = "".join(f'<img src="{html.escape(p)}" alt="{html.escape(p)}">' for p in result["images"])
    return f"""<h2>Memory that is written as well as read: a Neural Turing Machine</h2>
<p>The NTM ({result['parameters']['ntm']:,} parameters) and an LSTM ({result['parameters']['lstm']:,}) trained on
copying random 8-bit vectors of lengths 1-{COPY_TRAIN}, then ran unchanged on longer sequences. Bit errors per
sequence (the NTM paper's metric; lower is better):</p>
<table><tr><th>copy</th>{copy_head}</tr>{row('NTM', result['copy']['ntm'])}{row('LSTM', result['copy']['lstm'])}</table>
<p>Associative recall (items of three 6-bit vectors; give the item after the query), trained on 2-{RECALL_TRAIN} items:</p>
<table><tr><th>recall</th>{recall_head}</tr>{row('NTM', result['recall']['ntm'])}</table>
<p>An NTM learns late and suddenly: with a budget of {result['steps']} steps it may not have found the copy
program yet. Trained longer on lengths 1-20 (<code>benchmarks/machines.py</code>, docs/machines.md), it copies
sequences six times longer than any it saw, where an LSTM and a transformer fall to chance.
Where the NTM wrote and read, slot by step, on one longer episode of each task (a trained one writes the vectors
to consecutive slots and reads them back along the same path):</p>{images}"""


def machines_section(out: Path, *, seed: int, quick: bool) -> dict:
    """Train the NTM and an LSTM on copy, the NTM on recall, test them longer, draw the NTM's weights.

    Args:
        out: the tour's folder; the section writes into out/machines (runs/, viz/).
        seed: seeds the data and the training.
        quick: seconds instead of about a minute (4 steps).
    Returns:
        copy (model -> length -> bit errors), recall (ntm -> items -> bit errors), parameters, seconds,
        images (paths relative to out), html (a fragment).
    """
    folder = Path(out) / FOLDER
    size = 16 if quick else 256
    copy_jobs = _jobs("ntm_copy", {"max_length": str(COPY_TRAIN)}, ["ntm", "lstm"], quick, seed, 800)
    recall_jobs = _jobs("ntm_associative_recall", {"max_items": str(RECALL_TRAIN)}, ["ntm"], quick, seed, 400)
    copy_rows = compare.run_all(copy_jobs, folder / "copy", workers=2, progress=not quick)
    recall_rows = compare.run_all(recall_jobs, folder / "recall", progress=not quick)
    copy_runs = {j["model"]: load_run(folder / "copy" / "runs" / j["name"]) for j in copy_jobs}
    recall_run = load_run(folder / "recall" / "runs" / recall_jobs[0]["name"])
    viz = folder / "viz"
    images = [_draw(copy_runs["ntm"], "length", COPY_TESTS[1], viz / "ntm-copy.png", f"NTM copy, length {COPY_TESTS[1]}"),
              _draw(recall_run, "items", RECALL_TESTS[1], viz / "ntm-recall.png", f"NTM recall, {RECALL_TESTS[1]} items")]
    result = {
        "copy": {m: _tests(r, "length", COPY_TESTS, size) for m, r in copy_runs.items()},
        "recall": {"ntm": _tests(recall_run, "items", RECALL_TESTS, size)},
        "parameters": {row["model"]: row["parameters"] for row in copy_rows},
        "seconds": sum(row["seconds"] for row in copy_rows + recall_rows),
        "steps": copy_rows[0]["step"],
        "images": [str(p.relative_to(out)) for p in images],
    }
    result["html"] = _fragment(result)
    return result
