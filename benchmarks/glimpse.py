"""The recurrent attention model against a CNN: test error per setting, and cost against image size.

    ATTNLAB_DATA=../shared/data python benchmarks/glimpse.py accuracy --settings centered28,translated60 --steps 6000
    python benchmarks/glimpse.py cost
    python benchmarks/glimpse.py figures

`accuracy` trains "ram" (attnlab.glimpse.ram) and the baselines (`--models`, default ram and
image_cnn) on the "digits" task in the settings of Mnih et al. 2014 (section 4.1, Table 1-2):
28x28 MNIST with 6 glimpses of 8x8 at 1 scale; 60x60 translated MNIST with 8 glimpses of 12x12 at 3
scales; 60x60 cluttered with 4 distractors of 8x8 and 8 glimpses at 3 scales; 100x100 cluttered
with 8 distractors and 8 glimpses at 4 scales. It reports the test error on the 10,000 test digits
(placed once with a fixed seed) beside the paper's figures (../shared/REFERENCES.md), with the
training time on this machine. Each RAM row also holds the test error of the same trained model
glimpsing every time at its digit's centre (`oracle_error`): where that is much lower than its own,
the policy is what costs accuracy; where it is not, the classifier. Without MNIST in --data-dir/ATTNLAB_DATA it runs on scikit-learn's
small digits set and says so.

`cost` measures, for square images of 28, 60, 100 and 200 pixels, the multiply-adds of one image's
forward pass (counted by torch.utils.flop_counter.FlopCounterMode: multiply-adds = FLOPs / 2) and
the measured forward time per image (batch 64, eval mode, median of --repeats) of RAM (8 glimpses
of 12x12 at 3 scales), of DRAM naming two digits (6 glimpses, and its context network's 12x12
average of the whole image) and of the CNN and the soft-attention classifier, as ratios against RAM
at 28 px measured in the same run (the CNN as configured for `accuracy`). The glimpse models'
multiply-adds do not depend on the image; the CNN's grow with its area.

Writes benchmarks/results/glimpse-accuracy[-label].json, benchmarks/results/glimpse-cost.json and
with `figures` docs/figures/glimpse-cost.png and docs/figures/glimpse-paths-<setting>.png.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from dataclasses import replace
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

import common
from attnlab.glimpse import box_centres
from attnlab.models import build_model
from attnlab.train import ensure, load_run, resolve
from common import FIGURES, RESULTS

SETTINGS = {
    "centered28": {"task": {"setting": "centered"}, "ram": {"glimpse_size": 8, "num_scales": 1, "num_glimpses": 6},
                   "paper": {"ram": 0.0129, "cnn": 0.0121, "fc": 0.0169}},
    "translated60": {"task": {"setting": "translated", "size": 60},
                     "ram": {"glimpse_size": 12, "num_scales": 3, "num_glimpses": 8},
                     "paper": {"ram": 0.0184, "cnn": 0.0162}},
    "cluttered60": {"task": {"setting": "cluttered", "size": 60, "distractors": 4},
                    "ram": {"glimpse_size": 12, "num_scales": 3, "num_glimpses": 8},
                    "paper": {"ram": 0.0523, "cnn": 0.0783}},
    "cluttered100": {"task": {"setting": "cluttered", "size": 100, "distractors": 8},
                     "ram": {"glimpse_size": 12, "num_scales": 4, "num_glimpses": 8},
                     "paper": {"ram": 0.1083, "cnn": 0.1651}},
}
# The CNN keeps its feature map (flatten) for the fully connected layers, as the paper's baseline
# did (global average pooling lost about 10 points on centred MNIST in a short run), with 16 and
# 32 channels so that 100x100 canvases train in minutes on a CPU.
BASELINES = {"image_cnn": {"pooling": "flatten", "channels": [16, 32]}}
PAPER_SOURCE = "Mnih et al. 2014, arXiv v1 (../shared/REFERENCES.md)"
BASELINE_KEY = {"ram": "ram", "image_cnn": "cnn", "image_mlp": "fc"}
COST_SIZES = (28, 60, 100, 200)
COST_RAM = {"glimpse_size": 12, "num_scales": 3, "num_glimpses": 8}
# DRAM with its defaults (3 scales of 12x12, 3 glimpses per label) naming two digits: 6 glimpses,
# and the context network's look at the whole image averaged down to 12x12.
COST_DRAM = {"labels": 2}


def run_config(args, setting: str, model: str) -> dict:
    entry = SETTINGS[setting]
    values = dict(entry["ram"]) if model == "ram" else dict(BASELINES.get(model, {}))
    return {
        "task": {"name": "digits", "source": args.source, **entry["task"]},
        "model": {"name": model, **values},
        "train": {"steps": args.steps, "batch_size": args.batch_size, "lr": args.lr, "warmup_steps": 200,
                  "eval_every": args.eval_every, "eval_size": 10000, "seed": args.seed, "clip_norm": 5.0},
    }


@torch.no_grad()
def oracle_error(run, chunk: int = 1000) -> float:
    """Test error of a trained RAM glimpsing every time at its digit's centre (the true box): what the
    classifier gets without the policy's mistakes, to split the error between policy and classifier."""
    batch = run.task.eval_set(10**9, "test")
    centres = box_centres(run.task.boxes("test"), *batch.inputs.shape[-2:])  # (r, 2)
    right = 0
    for i in range(0, len(batch), chunk):
        logits = run.model.ram.forward_eager(batch.inputs[i : i + chunk], at=centres[i : i + chunk]).logits
        right += int((logits.argmax(-1) == batch.targets[i : i + chunk, 0]).sum())
    return 1 - right / len(batch)


def accuracy(args) -> dict:
    meta = common.machine()
    result = {"command": meta["command"], "date": meta["date"], "machine": meta,
              "paper_source": PAPER_SOURCE, "settings": {}}
    for setting in args.settings.split(","):
        rows = {}
        for model in args.models.split(","):
            folder = args.runs / setting / model
            config = run_config(args, setting, model)
            ensure(resolve(config), folder, progress=True)
            run = load_run(folder)
            test = next(r for r in reversed(run.metrics) if r.get("split") == "test")
            curve = [{"step": r["step"], "error": 1 - r["accuracy"], "seconds": r["seconds"]}
                     for r in run.metrics if r.get("split") == "val"]
            paper = SETTINGS[setting]["paper"].get(BASELINE_KEY.get(model, ""), None)
            rows[model] = {"test_error": 1 - test["accuracy"], "paper_error": paper, "steps": test["step"],
                           "train_seconds": test["seconds"], "parameters": test["parameters"],
                           "source": run.task.source_used, "curve": curve, "config": config, "run": str(folder)}
            if model == "ram":
                rows[model]["oracle_error"] = oracle_error(run)
            oracle = f", {rows[model]['oracle_error']:.2%} at the digit's centre" if model == "ram" else ""
            print(f"{setting} {model}: test error {rows[model]['test_error']:.2%}{oracle} (paper {paper}) "
                  f"in {test['seconds']:.0f} s on {run.task.source_used}", flush=True)
        result["settings"][setting] = rows
    return result


def _time_forward(model, images: torch.Tensor, repeats: int) -> float:
    """Median seconds of one forward pass per image (eval mode, no grad)."""
    times = []
    with torch.no_grad():
        model(images)  # warm-up
        for _ in range(repeats):
            start = time.perf_counter()
            model(images)
            times.append(time.perf_counter() - start)
    return statistics.median(times) / len(images)


def _multiply_adds(model, image: torch.Tensor) -> int:
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        model(image)
    return counter.get_total_flops() // 2


def cost(args) -> dict:
    from attnlab.spec import TaskSpec

    torch.manual_seed(0)
    rows = []
    for size in COST_SIZES:
        spec = TaskSpec(seq_len=1, answer_len=1, num_outputs=10, image=(1, size, size))
        images = torch.rand(args.cost_batch, 1, size, size)
        for name, values in (("ram", COST_RAM), ("dram", COST_DRAM), ("image_cnn", BASELINES["image_cnn"]),
                             ("soft_attention", {})):
            labels = values.get("labels", 1)
            model = build_model(name, {k: v for k, v in values.items() if k != "labels"},
                                replace(spec, answer_len=labels)).eval()
            rows.append({"model": name, "size": size, "parameters": sum(p.numel() for p in model.parameters()),
                         "multiply_adds": _multiply_adds(model, images[:1]),
                         "seconds_per_image": _time_forward(model, images, args.repeats)})
            print(f"{name} at {size}px: {rows[-1]['multiply_adds']:,} multiply-adds, "
                  f"{rows[-1]['seconds_per_image'] * 1e6:.0f} us per image", flush=True)
    base = next(r for r in rows if r["model"] == "ram" and r["size"] == COST_SIZES[0])
    for r in rows:
        r["multiply_adds_ratio"] = r["multiply_adds"] / base["multiply_adds"]
        r["time_ratio"] = r["seconds_per_image"] / base["seconds_per_image"]
    meta = common.machine()
    return {"command": meta["command"], "date": meta["date"], "machine": meta,
            "baseline": "ram at 28 px, same run", "ram": COST_RAM, "dram": COST_DRAM, "batch": args.cost_batch, "rows": rows}


def cost_table(result: dict) -> str:
    lines = ["| model | image | parameters | multiply-adds | x RAM@28 | us / image | x RAM@28 |", "|---|---|---|---|---|---|---|"]
    for r in result["rows"]:
        lines.append(f"| {r['model']} | {r['size']} | {r['parameters']:,} | {r['multiply_adds']:,} | "
                     f"{r['multiply_adds_ratio']:.2f} | {r['seconds_per_image'] * 1e6:.0f} | {r['time_ratio']:.2f} |")
    return "\n".join(lines)


def accuracy_table(result: dict) -> str:
    lines = ["| setting | model | test error | at the digit's centre | paper | steps | train s | data |",
             "|---|---|---|---|---|---|---|---|"]
    for setting, rows in result["settings"].items():
        for model, r in rows.items():
            paper = f"{r['paper_error']:.2%}" if r["paper_error"] is not None else ""
            oracle = f"{r['oracle_error']:.2%}" if "oracle_error" in r else ""
            lines.append(f"| {setting} | {model} | {r['test_error']:.2%} | {oracle} | {paper} | {r['steps']} | "
                         f"{r['train_seconds']:.0f} | {r['source']} |")
    return "\n".join(lines)


def figures(args) -> None:
    from attnlab.viz.curves import draw_comparison
    from attnlab.viz.glimpse import draw_glimpse_run

    cost_file = RESULTS / "glimpse-cost.json"
    if cost_file.is_file():
        rows = json.loads(cost_file.read_text())["rows"]
        summary = [{"model": r["model"], "setting": r["size"], "mean": r["multiply_adds"] / 1e6,
                    "min": r["multiply_adds"] / 1e6, "max": r["multiply_adds"] / 1e6} for r in rows]
        draw_comparison(summary, metric="million multiply-adds per image", x_label="image side (pixels)",
                        title="Cost of one image: RAM (8 glimpses), DRAM (6) vs CNNs", path=FIGURES / "glimpse-cost.png")
        print("wrote", FIGURES / "glimpse-cost.png")
    for path in sorted(RESULTS.glob("glimpse-accuracy*.json")):
        for setting, rows in json.loads(path.read_text())["settings"].items():
            if "ram" not in rows or not Path(rows["ram"]["run"]).is_dir():
                continue
            out, _ = draw_glimpse_run(load_run(rows["ram"]["run"]), FIGURES, examples=8, name=f"glimpse-paths-{setting}")
            print("wrote", out)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("which", choices=["accuracy", "cost", "figures"])
    parser.add_argument("--settings", default=",".join(SETTINGS))
    parser.add_argument("--models", default="ram,image_cnn")
    parser.add_argument("--steps", type=int, default=6000)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--eval-every", type=int, default=1000)
    parser.add_argument("--source", default="auto", help="mnist, small or auto (mnist when present)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--runs", type=Path, default=Path("/tmp/attnlab-glimpse"), help="run folders")
    parser.add_argument("--label", default="", help="appended to the accuracy results file's name")
    parser.add_argument("--cost-batch", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.which == "figures":
        figures(args)
        return 0
    if args.which == "cost":
        result, name, shown = cost(args), "glimpse-cost.json", cost_table
    else:
        result = accuracy(args)
        name, shown = f"glimpse-accuracy{'-' + args.label if args.label else ''}.json", accuracy_table
    path = common.write_result(result, name)
    print(shown(result))
    print("wrote", path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
