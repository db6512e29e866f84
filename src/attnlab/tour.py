"""The tour: the main job. On generated data, in minutes on a CPU, it shows the attention core,
trains every family on the tasks that tell them apart, and looks inside the winners.

Writes into one folder: report.html, metrics.json, the figures the report shows, and every
training run (runs/...), each of which `attnlab eval`, `attnlab viz` and `load_run` can open.
"""

from __future__ import annotations

import html
import json
import time
from pathlib import Path

import torch

from attnlab.core import attend, causal_mask, why_not_fast_path
from attnlab.core import capture
from attnlab.tour_babi import babi_section
from attnlab.tour_glimpse import glimpse_section
from attnlab.tour_machines import machines_section
from attnlab.tour_translation import translation_section
from attnlab.train import compare, load_run
from attnlab.viz import draw_attention
from attnlab.viz.curves import draw_results
from attnlab.viz.runs import draw_run, stacks_from_trace

DISTANCES = ("4", "16", "64")  # long_range settings: within, at and beyond a CNN's reach
FAMILIES = ("mlp", "cnn", "rnn", "lstm", "transformer")
SEQUENCE_FAMILIES = ("mlp", "cnn", "lstm", "bilstm", "transformer")


def core_section() -> dict:
    """The fast path (fused SDPA) and the eager path agree, and say why a call is eager."""
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(2, 4, 16, 32, generator=g) for _ in range(3))
    fast = attend(q, k, v, causal=True).out
    eager, weights = attend(q, k, v, causal=True, need_weights=True)
    return {
        "fast_vs_eager_max_abs_diff": float((fast - eager).abs().max()),
        "weights_rows_sum_to_one": bool(torch.allclose(weights.sum(-1), torch.ones(2, 4, 16))),
        "future_weight": float(weights.masked_select(~causal_mask(16)).abs().max()),
        "why_not_fast_path": {
            "scaled_dot": why_not_fast_path() or "on the fast path",
            "need_weights": why_not_fast_path(need_weights=True),
            "additive": why_not_fast_path(score="additive"),
        },
    }


def _train_values(steps: int, quick: bool) -> dict:
    if quick:
        return {"steps": "4", "eval_every": "2", "eval_size": "16", "batch_size": "16"}
    return {"steps": str(steps), "eval_every": "100", "eval_size": "256", "target": "0.99"}


def families_section(out: Path, *, seed: int, quick: bool) -> dict:
    """Every family on the long-range task at growing distance, and on reversing a sequence."""
    result = {}
    for name, task, models, sweep, steps in (
        ("long_range", "long_range", FAMILIES, compare.Sweep("task", "distance", DISTANCES), 600),
        ("reverse", "reverse", SEQUENCE_FAMILIES, None, 600),
    ):
        over = {"train": {**_train_values(steps, quick), "lr": "3e-3", "seed": str(seed)}}
        jobs = compare.plan(task, list(models), 1, over, sweep)
        folder = out / name
        rows = compare.run_all(jobs, folder, workers=2, progress=not quick)
        summary = compare.summarise(rows, "accuracy")
        for entry, exact in zip(summary, compare.summarise(rows, "sequence_accuracy")):
            entry["sequence_accuracy"] = exact["mean"]
        compare.write_results(folder, rows, summary, task=task, metric="accuracy", sweep=sweep,
                              command=f"attnlab tour (section {name})")
        draw_results(folder)
        result[name] = {"summary": summary, "plot": f"{name}/plot.png", "runs": [f"{name}/runs/{j['name']}" for j in jobs]}
    far = next(r for r in result["long_range"]["runs"] if "transformer" in r and r.split("distance")[1].startswith(DISTANCES[-1]))
    drawn = draw_run(load_run(out / far), out / "long_range" / "viz", examples=1)
    result["long_range"]["attention"] = [str(p.relative_to(out)) for p in drawn if p.suffix == ".png"]
    reverse = next(r for r in result["reverse"]["runs"] if "transformer" in r)
    drawn = draw_run(load_run(out / reverse), out / "reverse" / "viz", examples=1)
    result["reverse"]["attention"] = [str(p.relative_to(out)) for p in drawn if p.suffix == ".png"]
    return result


def copy_section(out: Path, *, seed: int, quick: bool) -> dict:
    """A decoder-only LM learns to copy; find the head that looks back at the source."""
    over = {"task": {"length": "10", "symbols": "8"}, "model": {"positions": "rope"},
            "train": {**_train_values(800, quick), "lr": "3e-3", "seed": str(seed)}}
    (job,) = compare.plan("copy", ["lm"], 1, over, None)
    (row,) = compare.run_all([job], out / "copy", progress=not quick)
    run = load_run(out / "copy" / "runs" / job["name"])
    data = run.task.eval_set(1, "test")
    with torch.no_grad(), capture(run.model) as trace:
        run.model(data.inputs)
    (layers,) = stacks_from_trace(trace).values()  # L x (b, h, t + n - 1, t + n - 1)
    length = run.config.task_config.length
    t = run.task.spec.seq_len
    answer_rows = slice(t - 1, t - 1 + length)  # the queries that predict the copy
    back = torch.stack([w[0, :, answer_rows, :length].sum(-1).mean(-1) for w in layers])  # (L, h)
    layer, head = divmod(int(back.argmax()), back.shape[1])
    names = run.task.token_names()
    tokens = [names[int(i)] for i in data.inputs[0]] + [names[int(i)] for i in data.targets[0][:-1]]
    draw_attention(layers[layer][0, head], rows=tokens, cols=tokens, path=out / "copy" / "copy_head.png",
                   title=f"layer {layer} head {head}: each copied symbol looks back at its source")
    draw_run(run, out / "copy" / "viz", examples=1)
    return {**row["test"], "steps": row["step"], "seconds": row["seconds"], "parameters": row["parameters"],
            "copy_head": {"layer": layer, "head": head, "weight_on_source": round(float(back.max()), 3)}}


def pretrained_part(out: Path, *, quick: bool = False) -> dict:
    """The pretrained MiniLM section, or the reason it could not run."""
    try:
        from attnlab.probes.tour_section import pretrained_section
    except ImportError as err:
        return {"html": f"<h2>Self-attention on real language</h2><p>Skipped: {html.escape(str(err))}</p>"}
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a 6-layer encoder on a few sentences: threads only add hand-offs
    try:
        # its figures sit beside report.html, as its fragment expects
        return pretrained_section(out, own_steps=4 if quick else 800)
    finally:
        torch.set_num_threads(threads)


def _table(summary: list[dict], sweep: bool, extra: str | None = None) -> str:
    """Families as rows; the metric per setting (or once), and `extra`'s mean when given."""
    settings = list(dict.fromkeys(s["setting"] for s in summary))
    head = "".join(f"<th>{html.escape('distance ' + str(v) if sweep else 'accuracy')}</th>" for v in settings)
    head += f"<th>{html.escape(extra)}</th>" if extra else ""
    rows = []
    for model in dict.fromkeys(s["model"] for s in summary):
        mine = [s for v in settings for s in summary if s["model"] == model and s["setting"] == v]
        cells = "".join(f"<td>{s['mean']:.1%}</td>" for s in mine)
        cells += f"<td>{mine[0][extra]:.1%}</td>" if extra else ""
        rows.append(f"<tr><td>{model}</td><td>{mine[0]['parameters']:,}</td>{cells}</tr>")
    return f"<table><tr><th>family</th><th>parameters</th>{head}</tr>{''.join(rows)}</table>"


def _images(paths: list[str]) -> str:
    return "".join(f'<img src="{html.escape(p)}" alt="{html.escape(p)}">' for p in paths)


def write_report(out: Path, metrics: dict) -> Path:
    core, fam, copy = metrics["core"], metrics["families"], metrics["copy"]
    reasons = "".join(f"<tr><td>{html.escape(k)}</td><td>{html.escape(v)}</td></tr>"
                      for k, v in core["why_not_fast_path"].items())
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>attnlab tour</title>
<style>body{{font-family:sans-serif;max-width:64em;margin:2em auto}}td,th{{padding:2px 8px;text-align:right}}
img{{max-width:100%}}</style></head><body><h1>attnlab tour</h1>
<p>Everything here was trained on generated data in this run ({metrics['seconds']:.0f} s on this machine); every
run folder under <code>runs/</code> can be reopened with <code>attnlab eval</code> and <code>attnlab viz</code>.</p>
<h2>One attention core</h2>
<p>Fused kernel and eager path agree to {core['fast_vs_eager_max_abs_diff']:.2e} (max abs difference);
weights sum to one: {core['weights_rows_sum_to_one']}; largest weight on a future key under the causal mask:
{core['future_weight']}.</p>
<table><tr><th>call</th><th>path</th></tr>{reasons}</table>
<h2>Who reaches how far: a dependency at growing distance</h2>
<p>The class token sits at least <i>distance</i> tokens before the query (task <code>long_range</code>).
Test accuracy of each family (chance 25%), one seed, same loop, same budget, about 10<sup>5</sup> parameters each.
The feed-forward net (MLP) sees every position but as unrelated features; the CNN sees only its receptive field
(21 tokens here); recurrent nets must carry the token across the gap; attention looks it up in one step.</p>
{_table(fam['long_range']['summary'], True)}
<img src="{fam['long_range']['plot']}" alt="accuracy against distance">
<p>Where the transformer's query looks, at the longest distance:</p>{_images(fam['long_range']['attention'])}
<h2>Reading one way: reverse a sequence</h2>
<p>Ten symbols, then write them last first (task <code>reverse</code>): accuracy per symbol and per whole
sequence. A unidirectional recurrent net must hold all ten in its state and give the first one back last;
attention reads each from its position.</p>
{_table(fam['reverse']['summary'], False, extra='sequence_accuracy')}
<img src="{fam['reverse']['plot']}" alt="reverse accuracy">
<p>Where the transformer looks while writing each answer:</p>{_images(fam['reverse']['attention'])}
<h2>A decoder-only transformer learns to copy</h2>
<p>{copy['parameters']:,} parameters, {copy['steps']} steps in {copy['seconds']:.0f} s: greedy copy accuracy
{copy['accuracy']:.1%} per symbol, {copy['sequence_accuracy']:.1%} per sequence (KV-cache decoding). Layer
{copy['copy_head']['layer']}, head {copy['copy_head']['head']} puts {copy['copy_head']['weight_on_source']:.0%} of the
copy positions' attention on the source sequence: the head that copies.</p>
<img src="copy/copy_head.png" alt="the copying head">
{metrics['translation']['html']}
{metrics['babi']['html']}
{metrics['machines']['html']}
{metrics['glimpse']['html']}
{metrics['pretrained'].get('html', '<h2>Self-attention on real language</h2><p>Skipped.</p>')}
</body></html>"""
    path = out / "report.html"
    path.write_text(page)
    return path


def run_tour(out: Path, *, seed: int = 0, quick: bool = False) -> Path:
    """Run every section into out; returns the report's path."""
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    metrics = {"core": core_section()}
    metrics["families"] = families_section(out, seed=seed, quick=quick)
    metrics["copy"] = copy_section(out, seed=seed, quick=quick)
    metrics["translation"] = translation_section(out, seed=seed, quick=quick)
    metrics["babi"] = babi_section(out, seed=seed, quick=quick)
    metrics["machines"] = machines_section(out, seed=seed, quick=quick)
    metrics["glimpse"] = glimpse_section(out, seed=seed, quick=quick)
    metrics["pretrained"] = pretrained_part(out, quick=quick)
    metrics["seconds"] = time.perf_counter() - start
    (out / "metrics.json").write_text(json.dumps(metrics, indent=1, default=str))
    return write_report(out, metrics)
