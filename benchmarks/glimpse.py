"""Glimpse models against a CNN: test error per setting, the pairs of digits, cost against image size.

    ATTNLAB_DATA=../shared/data python benchmarks/glimpse.py accuracy --settings centered28 --steps 51600 \
        --batch-size 128 --eval-every 4300 --seeds 0 1 2
    ATTNLAB_DATA=../shared/data python benchmarks/glimpse.py accuracy --settings pair100,sum100 --models dram,ram,image_cnn
    python benchmarks/glimpse.py cost
    python benchmarks/glimpse.py figures
    python benchmarks/glimpse.py reference --steps 20000 --batch-size 128 --eval-every 2000
    ATTNLAB_DATA=../shared/data python benchmarks/glimpse.py oracle --settings translated60 --steps 8600 --batch-size 128

`accuracy` trains "ram" (attnlab.glimpse.ram) and the baselines (`--models`, default ram and
image_cnn) on the "digits" task in the settings of Mnih et al. 2014 (section 4.1, Table 1-2):
28x28 MNIST with 6 glimpses of 8x8 at 1 scale; 60x60 translated MNIST with 8 glimpses of 12x12 at 3
scales; 60x60 cluttered with 4 distractors of 8x8 and 8 glimpses at 3 scales; 100x100 cluttered
with 8 distractors and 8 glimpses at 4 scales. The settings pair100 and sum100 are Ba et al. 2015's
two digits on a cluttered 100x100 canvas ("digit_pairs"): the unordered pair (55 classes; DRAM names
the two digits in turn) and their sum (19 classes). Each seed (`--seeds`; one run folder each under
--runs, resumed where it stopped) reports the test error on the 10,000 test canvases (placed once
with a fixed seed) beside the paper's figures (../shared/REFERENCES.md), with its learning curve and
training time; for glimpse models three ways (attnlab.glimpse.scoring: at the policy's means, one
sampled path, --samples paths averaged). Each RAM row on one digit also holds the test error of the
same trained model glimpsing every time at its digit's centre ("oracle_error", by `guided_view_error`:
where that is much lower than its own, the policy is what costs accuracy; where it is not, the
classifier) and where its glimpses went against the digit, glimpse by glimpse (`glimpse_distances`). The recipe is set by
--lr, --weight-decay, --warmup, --min-lr-ratio, --batch-size and --location-std. Without MNIST in
--data-dir/ATTNLAB_DATA it runs on scikit-learn's small digits set and says so.

`oracle` trains RAM's glimpse and core networks and classifier with every glimpse at the digit's centre
(the training canvases' boxes, which each sampled batch carries), cross-entropy only, and tests it the same
way: the error the classifier reaches when the policy is not in the way (glimpse-oracle[-label].json).
With --guide-steps N it guides the first N steps only (the policy imitating the digit's centre), trains
the rest with the recipe and tests the policy's own glimpses; with --guide-every K every K-th step after
those is guided too (train.guide_every, attnlab.train.loop.guided_at). Its state is kept at every evaluation
(--runs/<setting>/ram-guided-s<seed>/oracle-resume.pt, or ram-oracle-s<seed>): the same command run
again after a kill resumes there and ends as the run would have without the kill.

`cost` measures, for square images of 28, 60, 100 and 200 pixels, the multiply-adds of one image's
forward pass (attnlab.train.cost: FlopCounterMode's FLOPs / 2) and the measured forward time per
image (batch 64, eval mode, median of --repeats) of RAM (8 glimpses of 12x12 at 3 scales), of DRAM
naming two digits (6 glimpses, and its context network's 12x12 average of the whole image; with the
convolutional G_image too) and reading the sum (COST_DRAM_SUM), and of the CNN and the soft-attention
classifier, as ratios against RAM at 28 px measured in the same run
(the CNN as configured for `accuracy`). The glimpse models' multiply-adds do not depend on the
image; the CNN's grow with its area.

`runlength` fits a power law to one recipe's final test errors at several schedule lengths (`oracle`
results files, --results) and says at what length it reaches --target (else the paper's figure):

    python benchmarks/glimpse.py runlength --settings sum100 --results A.json B.json --label NAME

`reference` trains RAM on the tour's canvases (attnlab.tour.glimpse: small digits, cluttered 60x60,
its RAM config) with the recipe's flags and ships the run into the package as the tour's reference.

Writes benchmarks/results/glimpse-accuracy[-label].json, benchmarks/results/glimpse-cost.json,
glimpse-{oracle,split,runlength}[-label].json and
with `figures` docs/figures/glimpse-cost.png and docs/figures/glimpse-paths-<setting>.png.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch

import common
from attnlab.glimpse import box_centres, guide, sampled_errors
from attnlab.models import build_model
from attnlab.progress import progress_bar
from attnlab.train import build_task_and_model, ensure, load_run, resolve
from attnlab.train.checkpoint import atomic_write, save_config, save_weights, ship_run
from attnlab.train.cost import multiply_adds, seconds_per_example
from attnlab.train.vectorised import ensure_seeds
from common import FIGURES, RESULTS

SETTINGS = {
    "centered28": {
        "task": {"setting": "centered"},
        "ram": {"glimpse_size": 8, "num_scales": 1, "num_glimpses": 6},
        "paper": {"ram": 0.0129, "cnn": 0.0121, "fc": 0.0169},
    },
    "translated60": {
        "task": {"setting": "translated", "size": 60},
        "ram": {"glimpse_size": 12, "num_scales": 3, "num_glimpses": 8},
        "paper": {"ram": 0.0184, "cnn": 0.0162},
    },
    "cluttered60": {
        "task": {"setting": "cluttered", "size": 60, "distractors": 4},
        "ram": {"glimpse_size": 12, "num_scales": 3, "num_glimpses": 8},
        "paper": {"ram": 0.0523, "cnn": 0.0783},
    },
    "cluttered100": {
        "task": {"setting": "cluttered", "size": 100, "distractors": 8},
        "ram": {"glimpse_size": 12, "num_scales": 4, "num_glimpses": 8},
        "paper": {"ram": 0.1083, "cnn": 0.1651},
    },
}
# The CNN keeps its feature map (flatten) for the fully connected layers, as the paper's baseline
# did (global average pooling lost about 10 points on centred MNIST in a short run), with 16 and
# 32 channels so that 100x100 canvases train in minutes on a CPU.
# The soft-attention baseline reads the same trunk (the learned queries attend over its feature map's cells).
BASELINES = {"image_cnn": {"pooling": "flatten", "channels": [16, 32]}, "soft_attention": {"channels": [16, 32]}}
DEFAULT_LR = 1e-3  # --lr's default; a seeds-table row names any other
TRAIN_IMAGES = 55000  # MNIST's training digits less the 5,000 held out for validation: one epoch
# Two digits apart on a 100x100 canvas with 8 pieces of clutter (Ba et al. 2015, sec. 4.1). RAM and the
# CNN name the pair as one of 55 classes; DRAM names its two digits one after the other (sorted, so the
# pair is unordered), 3 glimpses each, as the paper's model names objects in sequence. The sum is one
# answer of 19 classes for all three; DRAM then takes 6 glimpses before it answers.
PAIRS = {
    "pair100": {
        "task": {"target": "pair"},
        "dram_answer": "digits",
        "ram": {"glimpse_size": 12, "num_scales": 4, "num_glimpses": 8},
        "dram": {"glimpse_size": 12, "num_scales": 4, "glimpses_per_label": 3},
        "paper": {"ram": 0.09, "dram": 0.05},
    },
    "sum100": {
        "task": {"target": "sum"},
        "ram": {"glimpse_size": 12, "num_scales": 4, "num_glimpses": 8},
        "dram": {"glimpse_size": 12, "num_scales": 4, "glimpses_per_label": 6},
        "paper": {"cnn": 0.032, "dram": 0.025},
    },
}
PAPER_SOURCE = "Mnih et al. 2014, arXiv v1; Ba et al. 2015 (../shared/REFERENCES.md)"
BASELINE_KEY = {"ram": "ram", "dram": "dram", "image_cnn": "cnn", "image_mlp": "fc"}
GLIMPSE_MODELS = ("ram", "dram")
COST_SIZES = (28, 60, 100, 200)
COST_RAM = {"glimpse_size": 12, "num_scales": 3, "num_glimpses": 8}
# DRAM with its defaults (3 scales of 12x12, 3 glimpses per label) naming two digits: 6 glimpses,
# and the context network's look at the whole image averaged down to 12x12.
COST_DRAM = {"labels": 2}
# The one that names the pairs at the paper's error: 4 scales, the convolutional G_image (PAIRS' pair100).
COST_DRAM_CONV = {"labels": 2, "glimpse_size": 12, "num_scales": 4, "what_net": "conv"}
# The one that reads the sum: one answer after 6 glimpses, 4 scales of 16x16, the convolutional G_image
# with twice the channels (the sum's seeds' --model-set glimpse_size=16 --model-set glimpse_hidden=256).
COST_DRAM_SUM = {"labels": 1, "glimpse_size": 16, "num_scales": 4, "glimpses_per_label": 6, "what_net": "conv",
                 "glimpse_hidden": 256}  # fmt: skip


def run_config(args, setting: str, model: str, seed: int) -> dict:
    entry = SETTINGS.get(setting) or PAIRS[setting]
    task = dict(entry["task"])
    values = dict(entry.get(model, BASELINES.get(model, {})))
    if model in GLIMPSE_MODELS and args.location_std:
        values["location_std"] = args.location_std
    if model == "ram" and args.policy_trains_core:
        values["policy_trains_core"] = True
    if model in GLIMPSE_MODELS and args.what_net != "mlp":
        values["what_net"] = args.what_net
    for item in args.model_set:  # "key=value", read by the model's config like a CLI override
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise SystemExit(f"glimpse.py: --model-set wants key=value, got {item!r}")
        values[key] = value
    if model == "dram" and "dram_answer" in entry:
        task["answer"] = entry["dram_answer"]
        if args.unordered:
            values["unordered"] = True
    return {
        "task": {"name": "digits" if setting in SETTINGS else "digit_pairs", "source": args.source, **task},
        "model": {"name": model, **values},
        "train": {
            "steps": args.steps,
            "batch_size": args.batch_size,
            "lr": args.lr,
            "warmup_steps": args.warmup,
            "weight_decay": args.weight_decay,
            "min_lr_ratio": args.min_lr_ratio,
            "eval_every": args.eval_every,
            "eval_size": 10000,
            "seed": seed,
            "clip_norm": 5.0,
            "keep_checkpoints": 0,
            **({"precision": precision(args)} if args.bf16 else {}),  # recorded when set
            **({"guide_every": args.guide_every} if args.guide_every else {}),  # recorded when set
        },
    }


@torch.no_grad()
def glimpse_distances(run, chunk: int = 1000) -> dict:
    """Where the policy's means looked against the digit, glimpse by glimpse (do later glimpses stay on it or
    drift away?): the median distance in pixels to the digit's centre, the share inside the digit's box, and
    the test error of the images whose last glimpse is inside the box against those whose last is not."""
    batch = run.task.eval_set(10**9, "test")
    y, x = batch.inputs.shape[-2:]
    boxes = run.task.boxes("test").to(torch.float32)  # (r, 4) top, left, height, width
    centres = box_centres(boxes, y, x)  # (r, 2)
    run.model.eval()
    outs = [run.model.ram(batch.inputs[i : i + chunk]) for i in range(0, len(batch), chunk)]
    looked = torch.cat([o.locations for o in outs])  # (r, g, 2)
    right = torch.cat([o.logits.argmax(-1) for o in outs]) == batch.targets[:, 0]  # (r,)
    scale = torch.tensor([(y - 1) / 2, (x - 1) / 2])  # pixels per unit of location
    apart = ((looked - centres[:, None]) * scale).norm(dim=-1)  # (r, g)
    pixel = (looked + 1) * scale  # (r, g, 2) row, col in pixels
    top_left, size = boxes[:, None, :2], boxes[:, None, 2:]  # (r, 1, 2) each
    inside = ((pixel >= top_left) & (pixel <= top_left + size - 1)).all(-1)  # (r, g)
    last = inside[:, -1]  # (r,)
    return {
        "distance_px": apart.median(dim=0).values.tolist(),
        "inside_box": inside.float().mean(0).tolist(),
        "error_last_inside": 1 - right[last].float().mean().item() if last.any() else None,
        "error_last_outside": 1 - right[~last].float().mean().item() if (~last).any() else None,
    }


def late_at_digit(run) -> dict[int, float]:
    """Does the drift of later glimpses cost accuracy? A RAM on one digit tested with its glimpses n..g at the
    digit's centre and glimpses 1..n-1 where its policy's means go (`guide.guided_view_error`'s first):
    n -> test error, for n from g/2 + 1 to g."""
    test = run.task.eval_set(10**9, "test")
    glimpses = run.model.ram.config.num_glimpses
    return {
        n: guide.guided_view_error(run.model.ram, test.inputs, test.boxes, test.targets, first=n)
        for n in range(glimpses // 2 + 1, glimpses + 1)
    }


def seed_row(run, folder: Path, config: dict, model: str, setting: str, samples: int) -> dict:
    """One trained seed's figures: test error at the policy's means (the loop's own test), one sampled
    path and `samples` averaged (glimpse models), at the digit's centre (RAM), and its curve."""
    metric = run.task.metric  # accuracy (digits) or sequence_accuracy (pairs: the pair or the sum right)
    test = next(r for r in reversed(run.metrics) if r.get("split") == "test")
    curve = [
        {"step": r["step"], "error": 1 - r[metric], "seconds": r["seconds"]}
        for r in run.metrics
        if r.get("split") == "val"
    ]
    row = {
        "test_error": 1 - test[metric],
        "steps": test["step"],
        "train_seconds": test["seconds"],
        "parameters": test["parameters"],
        "source": run.task.source_used,
        "curve": curve,
        "config": config,
        "run": str(folder),
        "device": "cuda" if torch.cuda.is_available() else "cpu",
    }  # train.device is auto
    if model in GLIMPSE_MODELS:  # on the GPU where there is one, as the training ran
        batch = run.task.eval_set(10**9, "test")
        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        scored = sampled_errors(
            run.model.to(device), batch.inputs.to(device), batch.targets.to(device), samples=samples
        )
        run.model.cpu()
        row.update(single_sample_error=scored.single, averaged_error=scored.averaged, samples=samples)
    if model == "ram" and setting in SETTINGS:
        row["oracle_error"] = guided_view_error(run.model, run.task)
        row.update(glimpse_distances(run))
    return row


def summarise(rows: list[dict]) -> dict:
    """Mean and best over seeds of each error a row holds."""
    out = {}
    for key in ("test_error", "single_sample_error", "averaged_error", "oracle_error"):
        values = [r[key] for r in rows if key in r]
        if values:
            out[key] = {"mean": statistics.fmean(values), "best": min(values), "seeds": len(values)}
    return out


def accuracy(args) -> dict:
    meta = common.machine()
    result = {
        "command": meta["command"],
        "date": meta["date"],
        "machine": meta,
        "paper_source": PAPER_SOURCE,
        "settings": {},
    }
    for setting in args.settings.split(","):
        models = {}
        for model in args.models.split(","):
            configs = [run_config(args, setting, model, seed) for seed in args.seeds]
            folders = [args.runs / setting / f"{model}-s{seed}" for seed in args.seeds]
            ensure_seeds([resolve(c) for c in configs], folders, progress=True)
            rows = [seed_row(load_run(f), f, c, model, setting, args.samples) for c, f in zip(configs, folders)]
            paper = (SETTINGS.get(setting) or PAIRS[setting])["paper"].get(BASELINE_KEY.get(model, ""), None)
            models[model] = {
                "paper_error": paper,
                "seeds": dict(zip(map(str, args.seeds), rows)),
                "summary": summarise(rows),
            }
            for seed, r in zip(args.seeds, rows):
                extra = "".join(
                    f", {name} {r[key]:.2%}"
                    for key, name in (
                        ("single_sample_error", "one sampled path"),
                        ("averaged_error", "averaged"),
                        ("oracle_error", "at the digit's centre"),
                    )
                    if key in r
                )
                print(
                    f"{setting} {model} seed {seed}: test error {r['test_error']:.2%}{extra} (paper {paper}) "
                    f"in {r['train_seconds']:.0f} s on {r['source']}",
                    flush=True,
                )
        result["settings"][setting] = models
    return result


def cost(args) -> dict:
    from attnlab.spec import TaskSpec

    torch.manual_seed(0)
    rows = []
    for size in COST_SIZES:
        spec = TaskSpec(seq_len=1, answer_len=1, num_outputs=10, image=(1, size, size))
        images = torch.rand(args.cost_batch, 1, size, size)
        for name, family, values in (
            ("ram", "ram", COST_RAM),
            ("dram", "dram", COST_DRAM),
            ("dram, conv G_image", "dram", COST_DRAM_CONV),
            ("dram, conv G_image, sum", "dram", COST_DRAM_SUM),
            ("image_cnn", "image_cnn", BASELINES["image_cnn"]),
            ("soft_attention", "soft_attention", BASELINES["soft_attention"]),
        ):
            labels = values.get("labels", 1)
            model = build_model(
                family, {k: v for k, v in values.items() if k != "labels"}, replace(spec, answer_len=labels)
            ).eval()
            rows.append(
                {
                    "model": name,
                    "size": size,
                    "parameters": sum(p.numel() for p in model.parameters()),
                    "multiply_adds": multiply_adds(model, images[:1]),
                    "seconds_per_image": seconds_per_example(model, images, args.repeats),
                }
            )
            print(
                f"{name} at {size}px: {rows[-1]['multiply_adds']:,} multiply-adds, "
                f"{rows[-1]['seconds_per_image'] * 1e6:.0f} us per image",
                flush=True,
            )
    base = next(r for r in rows if r["model"] == "ram" and r["size"] == COST_SIZES[0])
    for r in rows:
        r["multiply_adds_ratio"] = r["multiply_adds"] / base["multiply_adds"]
        r["time_ratio"] = r["seconds_per_image"] / base["seconds_per_image"]
    meta = common.machine()
    return {
        "command": meta["command"],
        "date": meta["date"],
        "machine": meta,
        "baseline": "ram at 28 px, same run",
        "ram": COST_RAM,
        "dram": COST_DRAM,
        "dram_conv": COST_DRAM_CONV,
        "dram_sum": COST_DRAM_SUM,
        "soft_attention": BASELINES["soft_attention"],
        "batch": args.cost_batch,
        "rows": rows,
    }


def cost_table(result: dict) -> str:
    lines = [
        "| model | image | parameters | multiply-adds | x RAM@28 | us / image | x RAM@28 |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in result["rows"]:
        lines.append(
            f"| {r['model']} | {r['size']} | {r['parameters']:,} | {r['multiply_adds']:,} | "
            f"{r['multiply_adds_ratio']:.2f} | {r['seconds_per_image'] * 1e6:.0f} | {r['time_ratio']:.2f} |"
        )
    return "\n".join(lines)


def accuracy_table(result: dict) -> str:
    """Mean (best) over seeds of each error, beside the paper's."""
    lines = [
        "| setting | model | seeds | test error, means | one sampled path | averaged | at the digit's centre "
        "| paper | steps | train s | data |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for setting, models in result["settings"].items():
        for model, entry in models.items():
            summary, rows = entry["summary"], list(entry["seeds"].values())
            cells = [
                f"{summary[k]['mean']:.2%} ({summary[k]['best']:.2%})" if k in summary else ""
                for k in ("test_error", "single_sample_error", "averaged_error", "oracle_error")
            ]
            paper = f"{entry['paper_error']:.2%}" if entry["paper_error"] is not None else ""
            lines.append(
                f"| {setting} | {model} | {len(rows)} | {' | '.join(cells)} | {paper} | {rows[0]['steps']} | "
                f"{statistics.fmean(r['train_seconds'] for r in rows):.0f} | {rows[0]['source']} |"
            )
    return "\n".join(lines)


NAMED = ("name", "unordered", "what_net")  # DRAM's model.* the seeds table names by their own words
GUIDED = "ram, guided start"  # the table's name for RAM trained with `oracle --guide-steps` (100 epochs)


def seed_files(exclude: tuple[str, ...] = ("abl-", "probe-")) -> dict[tuple[str, str], dict[str, dict]]:
    """(setting, model) -> seed -> row of every per-seed results file (glimpse-accuracy-<label>-s<seed>.json,
    one long run each), the ablation's and the probes' left out; and the guided starts' seeds
    (glimpse-oracle-<label>-s<seed>.json, guide in the label): RAM's as model GUIDED (100 epochs, or any
    length on two digits) or "GUIDED, E epochs" (then ", conv reader", ", baseline and jitter guided" where
    so), DRAM's as "dram[, unordered], guided start[, conv G_image][, key=value of --model-set][, S steps]"
    (S where not 43,000); ", lr X" where --lr was not DEFAULT_LR, ", bfloat16" where it trained with
    --bf16 and ", one step in K guided" with --guide-every K; their curves of test error as "test_curve"."""
    rows: dict[tuple[str, str], dict[str, dict]] = {}
    for path in sorted(RESULTS.glob("glimpse-accuracy-*-s[0-9]*.json")):
        if path.stem.removeprefix("glimpse-accuracy-").startswith(exclude):
            continue
        for setting, models in json.loads(path.read_text())["settings"].items():
            for model, entry in models.items():
                for seed, row in entry["seeds"].items():
                    name = f"{model}, unordered" if row["config"]["model"].get("unordered") else model
                    name += ", bfloat16" if row["config"]["train"].get("precision") == "bfloat16" else ""
                    rows.setdefault((setting, name), {})[seed] = row | {
                        "file": path.name,
                        "paper": entry["paper_error"],
                    }
    for path in sorted(RESULTS.glob("glimpse-oracle-*-guide*-s[0-9]*.json")):
        if path.stem.removeprefix("glimpse-oracle-").startswith(exclude):
            continue
        for setting, by_seed in json.loads(path.read_text())["settings"].items():
            for seed, row in by_seed.items():
                train, model = row["config"]["train"], row["config"]["model"]
                if model["name"] == "dram":  # on the two-digit canvases; its length named where not the 43,000 steps
                    name = f"dram{', unordered' if model.get('unordered') else ''}, guided start"
                    name += ", conv G_image" if model.get("what_net") == "conv" else ""
                    set_here = {k: v for k, v in model.items() if k not in NAMED and PAIRS[setting]["dram"].get(k) != v}
                    name += "".join(f", {key}={value}" for key, value in set_here.items())  # --model-set's
                    name += f", {train['steps']:,} steps" if train["steps"] != 43000 else ""
                    paper = PAIRS[setting]["paper"]["dram"]
                else:
                    epochs = round(train["steps"] * train["batch_size"] / TRAIN_IMAGES)
                    name = GUIDED if epochs == 100 or setting in PAIRS else f"{GUIDED}, {epochs} epochs"
                    name += ", conv reader" if model.get("what_net") == "conv" else ""
                    name += (
                        ", baseline and jitter guided" if row.get("guide_baseline") and row.get("guide_jitter") else ""
                    )
                    paper = (
                        PAIRS[setting]["paper"].get("ram") if setting in PAIRS else SETTINGS[setting]["paper"]["ram"]
                    )
                name += f", lr {train['lr']:g}" if train["lr"] != DEFAULT_LR else ""  # --lr
                name += ", bfloat16" if train.get("precision") == "bfloat16" else ""  # --bf16
                name += f", one step in {train['guide_every']} guided" if train.get("guide_every") else ""
                rows.setdefault((setting, name), {})[seed] = {
                    **{
                        k: row[k]
                        for k in ("test_error", "single_sample_error", "averaged_error", "config", "run")
                        if k in row
                    },
                    "test_curve": [(p["step"], p["test_error"]) for p in row["curve"]],
                    "steps": row["curve"][-1]["step"],
                    "train_seconds": row["curve"][-1]["seconds"],
                    "device": "cpu",
                    "file": path.name,
                    "paper": paper,
                }
    return rows


def seeds_table(rows: dict[tuple[str, str], dict[str, dict]]) -> str:
    """The long runs, seeds gathered from their files: mean (best) of each error, the paper's beside them."""
    lines = [
        "| setting | model | glimpses | seeds | test error, means: mean (best) | one sampled path | averaged (10) "
        "| paper | steps (epochs) | training per seed | trained on |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for (setting, model), by_seed in sorted(rows.items()):
        runs = list(by_seed.values())
        summary, first = summarise(runs), runs[0]
        cells = [f"{summary[k]['mean']:.2%} ({summary[k]['best']:.2%})" if summary.get(k, {}).get("seeds") == len(runs)
                 else "" for k in ("test_error", "single_sample_error", "averaged_error")]  # fmt: skip
        values, train = first["config"]["model"], first["config"]["train"]
        labels = 2 if first["config"]["task"].get("answer") == "digits" else 1  # DRAM names both digits of a pair
        glimpses = values.get(
            "num_glimpses", values.get("glimpses_per_label", 0) * labels if model.startswith("dram") else ""
        )
        epochs = f" ({train['steps'] * train['batch_size'] / TRAIN_IMAGES:.0f})" if setting in SETTINGS else ""
        low, high = min(r["steps"] for r in runs), max(r["steps"] for r in runs)
        steps = f"{low:,}" if low == high else f"{low:,}-{high:,}"
        paper = f"{first['paper']:.2%}" if first["paper"] is not None else ""
        minutes = statistics.fmean(r["train_seconds"] for r in runs) / 60
        where = ", ".join(sorted({r.get("device", "cpu") for r in runs}))
        lines.append(
            f"| {setting} | {model} | {glimpses} | {', '.join(sorted(by_seed))} | {' | '.join(cells)} | {paper} "
            f"| {steps}{epochs} | {minutes:.0f} min | {where} |"
        )
    return "\n".join(lines)


def table(args) -> dict:
    rows = seed_files()
    print(seeds_table(rows))
    return {
        "command": common.machine()["command"],
        "runs": {
            f"{setting} {model}": {
                "summary": summarise(list(by_seed.values())),
                "files": sorted({r["file"] for r in by_seed.values()}),
            }
            for (setting, model), by_seed in sorted(rows.items())
        },
    }


def figures(args) -> None:
    from attnlab.viz.curves import draw_comparison, draw_curve_panels
    from attnlab.viz.glimpse import draw_glimpse_run

    cost_file = RESULTS / "glimpse-cost.json"
    if cost_file.is_file():
        rows = json.loads(cost_file.read_text())["rows"]
        summary = [
            {
                "model": r["model"],
                "setting": r["size"],
                "mean": r["multiply_adds"] / 1e6,
                "min": r["multiply_adds"] / 1e6,
                "max": r["multiply_adds"] / 1e6,
            }
            for r in rows
        ]
        draw_comparison(
            summary,
            metric="million multiply-adds per image",
            x_label="image side (pixels)",
            title="Cost of one image: RAM (8 glimpses), DRAM (6) vs CNNs",
            path=FIGURES / "glimpse-cost.png",
        )
        print("wrote", FIGURES / "glimpse-cost.png")
    long_runs = seed_files()
    panels: dict[str, dict[str, list]] = {}  # setting -> model -> one curve per seed
    for (setting, model), by_seed in sorted(
        long_runs.items(), key=lambda item: list(SETTINGS | PAIRS).index(item[0][0])
    ):
        for _, row in sorted(by_seed.items()):
            if "test_curve" in row:  # the guided starts measured the test canvases along the run
                panels.setdefault(setting, {}).setdefault(f"{model} (test)", []).append(row["test_curve"])
            else:
                panels.setdefault(setting, {}).setdefault(model, []).append(
                    [(p["step"], p["error"]) for p in row["curve"]]
                )
    if panels:
        draw_curve_panels(panels, y_label="error at the policy's means", log_y=True, path=FIGURES / "glimpse-curves.png",
                          title="Glimpse models and the CNN: validation error (test error where marked) along each long run")  # fmt: skip
        print("wrote", FIGURES / "glimpse-curves.png")
    for (setting, model), by_seed in sorted(long_runs.items()):  # one seed's paths, of those whose folder is here
        folders = [row["run"] for _, row in sorted(by_seed.items()) if "run" in row and Path(row["run"]).is_dir()]
        if model.split(",")[0] not in GLIMPSE_MODELS or not folders:  # the first guided starts kept no run folder
            continue
        slug = model.replace(", ", "-").replace(" ", "-")  # e.g. ram-guided-start
        name = (
            f"glimpse-paths-{setting}" if setting in SETTINGS and model == "ram" else f"glimpse-paths-{setting}-{slug}"
        )
        out, _ = draw_glimpse_run(load_run(folders[0]), FIGURES, examples=8, name=name)
        print("wrote", out)


def guided_view_error(model, task, order: str = "value") -> float:
    """Test error of a trained glimpse family glimpsing where its guide looks (attnlab.glimpse.guide), on the
    task's test canvases: with the policy's error, it splits the error between policy and classifier."""
    test = task.eval_set(10**9, "test")
    return guide.guided_view_error(glimpse_network(model), test.inputs, test.boxes, test.targets, order)


def glimpse_network(model):
    """The RAM or DRAM inside a glimpse family."""
    return model.dram if hasattr(model, "dram") else model.ram


def set_location_std(model, std: float) -> None:
    """The location policy's std from now on (its config is otherwise fixed for the run)."""
    network = glimpse_network(model)
    network.config = replace(network.config, location_std=std)


def std_at(step: int, start_step: int, steps: int, start: float, end: float) -> float:
    """--location-std-end: the std at `step`, from `start` at start_step (the hand-over) down a cosine to `end`
    at the last step: wide draws while the policy explores, narrow ones (its means' views) as it settles."""
    done = min(1.0, (step - start_step) / max(1, steps - 1 - start_step))
    return end + (start - end) * 0.5 * (1 + math.cos(math.pi * done))


@torch.no_grad()
def policy_error(model, test, chunk: int = 1000) -> float:
    """Test error with the model's own glimpses (its policy's means): every answer of a canvas right."""
    model.eval()
    right = sum(int((model(test.inputs[i : i + chunk]).argmax(-1) == test.targets[i : i + chunk]).all(-1).sum())
                for i in range(0, len(test), chunk))  # fmt: skip
    return 1 - right / len(test)


RESUME = "oracle-resume.pt"  # an unfinished `oracle` run's state, in its folder under --runs


def save_oracle(folder: Path, recorded: dict, step: int, model, optimizer, generator, curve: list[dict]) -> None:
    """Keep an `oracle` run's state after `step` steps (weights, optimizer, both generators, its curve so
    far), written whole or not at all, so that a killed run resumes there (`resume_oracle`)."""
    folder.mkdir(parents=True, exist_ok=True)
    state = {"recorded": recorded, "step": step, "model": model.state_dict(), "optimizer": optimizer.state_dict(),
             "generator": generator.get_state(), "torch_rng": torch.get_rng_state(), "curve": curve}  # fmt: skip
    atomic_write(folder / RESUME, lambda path: torch.save(state, path))


def resume_oracle(folder: Path, recorded: dict, model, optimizer, generator) -> tuple[int, list[dict], float]:
    """The step to start from, the curve so far and the seconds spent: from the state `save_oracle` kept
    in folder for the same command (else from the start, the state of another command set aside)."""
    path = folder / RESUME
    if not path.exists():
        return 0, [], 0.0
    state = torch.load(path, weights_only=True)
    if state["recorded"] != json.loads(json.dumps(recorded)):
        path.replace(folder / f"{RESUME}.other")
        print(f"{path}: kept by another command; set aside as {RESUME}.other, starting over", flush=True)
        return 0, [], 0.0
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    generator.set_state(state["generator"])
    torch.set_rng_state(state["torch_rng"])
    print(f"{path}: resuming at step {state['step']}", flush=True)
    return state["step"], state["curve"], state["curve"][-1]["seconds"]


def precision(args) -> str:
    """--bf16: the training steps' train.precision."""
    return "bfloat16" if args.bf16 else "float32"


def train_step(args, model, task, batch, optimizer, clip_norm: float, guided: bool, own: bool) -> None:
    """One `oracle` step: with own (a guided run past its guided steps) the recipe's step (the policy on its
    own, attnlab.train.loop.optimizer_step); else the guide's (attnlab.glimpse.guide.guide_loss: imitating
    when guided, an oracle's views when not)."""
    from attnlab.train.loop import apply_gradients, optimizer_step

    if guided and own:
        optimizer_step(model, model, task, batch, optimizer, clip_norm, precision=precision(args))
        return
    model.train()
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=args.bf16):  # as optimizer_step's precision
        loss = guide.guide_loss(glimpse_network(model), batch.inputs, batch.boxes, batch.targets, imitate=guided,
                                order=args.guide_order, trains_core=guided and args.guide_trains_core,
                                baseline=args.guide_baseline, jitter=args.guide_jitter)  # fmt: skip
    apply_gradients(loss, model, optimizer, clip_norm)


def oracle_policy(args) -> dict:
    """RAM's glimpse and core networks and classifier trained and tested with a perfect policy: every glimpse
    at the digit's centre (the true box), cross-entropy only. Its test error is what the classifier gets
    when the policy is not in the way: the learned policy costs the difference.

    With --guide-steps N (0 < N < steps), the first N steps are guided instead (attnlab.glimpse.guide.guide_loss:
    the policy imitates the digit's centres), the remaining steps are the recipe's own
    (attnlab.train.loop.optimizer_step: the policy samples, and REINFORCE trains it), and the test is the policy's, at its means. With dram in
    --models the model is DRAM, on the pairs canvases (guided only: each label's glimpses at its digit).
    With --location-std-end S the policy's std falls from the config's at the hand-over to S at the last
    step (`std_at`); the sampled paths scored at the end are drawn with S."""
    from attnlab.train.loop import guided_at, lr_at, make_optimizer, seed_everything

    meta = common.machine()
    result = {"command": meta["command"], "date": meta["date"], "machine": meta, "settings": {}}
    guided = 0 < args.guide_steps < args.steps
    name = "dram" if "dram" in args.models.split(",") else "ram"
    if (name == "dram" or not set(args.settings.split(",")) <= set(SETTINGS)) and not guided:
        raise SystemExit(
            "glimpse.py oracle: DRAM, and RAM on two digits, are guided only (--guide-steps N, 0 < N < --steps)"
        )
    two_digits = any(setting in PAIRS for setting in args.settings.split(","))
    extra = {"guide_order": args.guide_order} if name == "dram" or two_digits else {}  # recorded with two digits
    extra.update({k: True for k in ("guide_baseline", "guide_jitter") if getattr(args, k)})  # recorded when set
    if args.guide_every and not guided:
        raise SystemExit("glimpse.py oracle: --guide-every needs a guided run (--guide-steps N)")
    if args.location_std_end:
        if not guided:
            raise SystemExit("glimpse.py oracle: --location-std-end needs a guided run (--guide-steps N)")
        extra["location_std_end"] = args.location_std_end
    for setting in args.settings.split(","):
        rows = {}
        for seed in args.seeds:
            values = run_config(args, setting, name, seed)
            config = resolve(values)
            seed_everything(seed)
            task, model = build_task_and_model(config)
            cfg = replace(config.train, guide_steps=args.guide_steps)  # guided_at's steps: the first N, every K
            optimizer, generator = make_optimizer(model, cfg), torch.Generator().manual_seed(seed)
            test = task.eval_set(10**9, "test")
            folder = args.runs / setting / f"{name}-{'guided' if guided else 'oracle'}-s{seed}"  # its weights, resume
            recorded = dict(values, guide_steps=args.guide_steps, guide_trains_core=args.guide_trains_core, **extra)
            start_std = glimpse_network(model).config.location_std
            first, curve, seconds = resume_oracle(folder, recorded, model, optimizer, generator)
            start = time.perf_counter() - seconds
            bar = progress_bar(total=cfg.steps, initial=first, desc=f"{name} on {setting} seed {seed}", unit="step")
            for step in range(first, cfg.steps):
                for group in optimizer.param_groups:
                    group["lr"] = lr_at(step, cfg)
                batch = task.sample(cfg.batch_size, generator)
                if args.location_std_end and step >= args.guide_steps:
                    set_location_std(model, std_at(step, args.guide_steps, cfg.steps, start_std, args.location_std_end))
                train_step(args, model, task, batch, optimizer, cfg.clip_norm, guided, not guided_at(step + 1, cfg))
                bar.update(1)
                if (step + 1) % cfg.eval_every == 0 or step + 1 == cfg.steps:
                    model.eval()
                    error = policy_error(model, test) if guided else guided_view_error(model, task)
                    curve.append({"step": step + 1, "test_error": error, "seconds": time.perf_counter() - start})
                    bar.write(f"{setting} {name} {'guided' if guided else 'oracle'} policy seed {seed} step {step + 1}: "
                              f"test error {error:.2%}", file=sys.stdout)  # fmt: skip
                    sys.stdout.flush()  # the line in a log as it happens
                    if step + 1 < cfg.steps:
                        save_oracle(folder, recorded, step + 1, model, optimizer, generator, curve)
            bar.close()
            rows[str(seed)] = {"test_error": curve[-1]["test_error"], "curve": curve, "config": values,
                               "guide_steps": args.guide_steps if guided else None,
                               "guide_trains_core": guided and args.guide_trains_core, **extra}  # fmt: skip
            if guided:
                scored = sampled_errors(model, test.inputs, test.targets, samples=args.samples)
                rows[str(seed)].update(
                    single_sample_error=scored.single,
                    averaged_error=scored.averaged,
                    guided_view_error=guided_view_error(model, task, args.guide_order),
                )
                folder.mkdir(parents=True, exist_ok=True)  # the trained model, for `figures`
                save_config(folder, values)
                save_weights(folder, model)
                rows[str(seed)]["run"] = str(folder)
            (folder / RESUME).unlink(missing_ok=True)
        result["settings"][setting] = rows
    return result


TRAIN_CANVASES = 10000  # `split`: training canvases scored beside the test set, drawn with seed 0


def split(args) -> dict:
    """Policy or classifier, and fitting or generalising: each saved run in --run-folders tested at its policy's
    means and where its guide looks (`guided_view_error`, in --guide-order), the difference being what its
    policy costs; and at its policy's means on TRAIN_CANVASES fresh canvases of training digits
    ("train_error"): near its test error, the model has not yet fitted what it was trained on (a longer run
    or a larger model, not regularisation, is what would lower it); far below, it has and does not generalise.
    A RAM on one digit also gets where its glimpses went (`glimpse_distances`) and what their drift costs
    (`late_at_digit`)."""
    result = {"command": common.machine()["command"], "guide_order": args.guide_order, "runs": {}}
    for folder in args.run_folders:
        run = load_run(folder)
        test = run.task.eval_set(10**9, "test")
        train = run.task.sample(TRAIN_CANVASES, torch.Generator().manual_seed(0))
        row = {
            "policy_error": policy_error(run.model, test),
            "guided_view_error": guided_view_error(run.model, run.task, args.guide_order),
            "train_error": policy_error(run.model, train),
        }
        print(
            f"{folder}: test error {row['policy_error']:.2%} at the policy's means, "
            f"{row['guided_view_error']:.2%} where the guide looks; {row['train_error']:.2%} on "
            f"{TRAIN_CANVASES:,} training canvases",
            flush=True,
        )
        if hasattr(run.model, "ram") and test.boxes is not None and test.boxes.dim() == 2:  # RAM on one digit
            row["glimpses"] = glimpse_distances(run)
            row["late_at_digit"] = late_at_digit(run)
            print(f"  median pixels from the digit, glimpse by glimpse: "
                  f"{', '.join(f'{d:.1f}' for d in row['glimpses']['distance_px'])}; glimpses n.. at the digit: "
                  f"{', '.join(f'n={n} {e:.2%}' for n, e in row['late_at_digit'].items())}", flush=True)  # fmt: skip
        result["runs"][str(folder)] = row
    return result


RECIPE_FREE = ("steps", "eval_every", "seed")  # `runlength`: the train fields runs of one recipe may differ in


def recipe(row: dict) -> dict:
    """An `oracle` or `accuracy` seed row's recipe: its config and options, less its length, evaluation
    interval and seed."""
    config = json.loads(json.dumps(row["config"]))
    config["train"] = {k: v for k, v in config["train"].items() if k not in RECIPE_FREE}
    options = {k: v for k, v in row.items() if k.startswith("guide_") or k == "location_std_end"}
    return {"config": config, **options}


def flat(values: dict, prefix: str = "") -> dict:
    """A nested dict's leaves by dotted name: {"train": {"lr": 1}} -> {"config.train.lr": 1} with prefix "config."."""
    out = {}
    for key, value in values.items():
        out.update(flat(value, f"{prefix}{key}.") if isinstance(value, dict) else {f"{prefix}{key}": value})
    return out


def run_length(args) -> dict:
    """The schedule that would reach a missed target: each of --results (`oracle` runs of one recipe, in
    --settings' one setting) gives its mean test error over seeds at its schedule's length, a power law
    through those (attnlab.train.scaling.fit_power_law) puts --target (else the paper's figure for the
    model) at a length, and each length's error is set beside what the law gives it."""
    from attnlab.train.scaling import fit_power_law

    (setting,) = args.settings.split(",")
    by_length: dict[int, list[float]] = {}
    first = None
    for path in args.results:
        rows = json.loads(path.read_text())["settings"].get(setting)
        if not rows:
            raise SystemExit(f"glimpse.py runlength: {path}: no runs on {setting}")
        for seed, row in rows.items():
            if first is None:
                first = (path, recipe(row))
            elif recipe(row) != first[1]:
                mine, theirs = flat(recipe(row)), flat(first[1])
                differ = sorted(k for k in mine.keys() | theirs.keys() if mine.get(k) != theirs.get(k))
                raise SystemExit(f"glimpse.py runlength: {path} seed {seed}: another recipe than {first[0]}'s "
                                 f"({', '.join(differ)} differ; runs may differ only in train.{', train.'.join(RECIPE_FREE)})")  # fmt: skip
            by_length.setdefault(row["curve"][-1]["step"], []).append(row["test_error"])
    assert first is not None  # --results is required and each file had rows
    model = first[1]["config"]["model"]["name"]
    target = args.target or (SETTINGS | PAIRS)[setting]["paper"][model]
    points = [(steps, sum(errors) / len(errors)) for steps, errors in sorted(by_length.items())]
    law = fit_power_law(points)
    for (steps, error), errors in zip(points, (by_length[s] for s, _ in points)):
        print(f"{steps:,} steps: {error:.2%} over {len(errors)} seed(s), the law {law.at(steps):.2%}")
    needed = law.steps_for(target)
    print(f"error = {law.a:.3g} * steps^-{law.b:.3f} (x {2**-law.b:.3f} a doubling): {target:.2%} at "
          f"{needed:,.0f} steps", flush=True)  # fmt: skip
    return {"command": common.machine()["command"], "setting": setting, "model": model, "target": target,
            "recipe": first[1], "points": [{"steps": s, "test_error": e, "seeds": len(by_length[s]), "law": law.at(s)}
                                           for s, e in points],
            "a": law.a, "b": law.b, "steps_for_target": needed}  # fmt: skip


def reference(args) -> None:
    """Train RAM on the tour's canvases (its task and RAM config) with this benchmark's recipe, and ship the
    run (config, weights, learning curve) into the package as the tour's reference RAM."""
    from attnlab.tour.glimpse import MODELS, REFERENCE, TASK

    folder = args.runs / "tour-reference" / "ram"
    overrides = {
        "task": TASK,
        "model": MODELS["ram"],
        "train": {**run_config(args, "cluttered60", "ram", args.seeds[0])["train"], "eval_size": 1000},
    }
    ensure(resolve({"task": {"name": "digits"}, "model": {"name": "ram"}}, overrides), folder, progress=True)
    size = ship_run(folder, REFERENCE)
    print(f"copied {folder} to {REFERENCE} ({size / 1024:.0f} KiB)")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "which", choices=["accuracy", "oracle", "cost", "figures", "reference", "table", "split", "runlength"]
    )
    parser.add_argument("--settings", default=",".join(SETTINGS), help=f"of {', '.join([*SETTINGS, *PAIRS])}")
    parser.add_argument("--models", default="ram,image_cnn")
    parser.add_argument("--steps", type=int, default=6000)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=DEFAULT_LR)
    parser.add_argument("--eval-every", type=int, default=1000)
    parser.add_argument("--source", default="auto", help="mnist, small or auto (mnist when present)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--weight-decay", type=float, default=0.01, help="AdamW's decoupled decay on matrices")
    parser.add_argument("--warmup", type=int, default=200, help="linear warm-up steps")
    parser.add_argument("--min-lr-ratio", type=float, default=0.1, help="the cosine ends at lr times this")
    parser.add_argument("--location-std", type=float, default=0.0, help="RAM's location std (0: the family's default)")
    parser.add_argument(
        "--policy-trains-core",
        action="store_true",
        help="RAM: REINFORCE's gradient also reaches the core and glimpse networks",
    )
    parser.add_argument(
        "--unordered",
        action="store_true",
        help="dram on pair100: the two digits named in either order (DRAMConfig.unordered)",
    )
    parser.add_argument(
        "--what-net",
        choices=["mlp", "conv"],
        default="mlp",
        help="what reads a glimpse: DRAM's G_image or RAM's W_g input (what_net of DRAMConfig, RAMConfig)",
    )
    parser.add_argument(
        "--model-set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="set one model.* field (repeatable), e.g. glimpse_hidden=256; DRAM's rows in the seeds table name it",
    )
    parser.add_argument("--samples", type=int, default=10, help="sampled paths averaged for the averaged error")
    parser.add_argument("--guide-steps", type=int, default=0, help="oracle: guide this many steps, then the recipe's")
    parser.add_argument("--guide-every", type=int, default=0,
                        help="oracle: after the guided steps every this-many-th step is guided too (0: none)")  # fmt: skip
    parser.add_argument(
        "--guide-trains-core", action="store_true", help="oracle: the guide's imitation also trains the core"
    )
    parser.add_argument("--guide-order", choices=["value", "position"], default="value",
                        help="oracle, two digits: the guide visits the smaller digit first (value) or the left one (position)")  # fmt: skip
    parser.add_argument(
        "--guide-baseline",
        action="store_true",
        help="oracle: the guided steps also train the baseline on the guided views' returns",
    )
    parser.add_argument(
        "--guide-jitter",
        action="store_true",
        help="oracle: each guided location drawn around its digit's centre with the policy's std",
    )
    parser.add_argument(
        "--location-std-end",
        type=float,
        default=0.0,
        help="oracle: after the guided steps the location std falls down a cosine to this (0: fixed)",
    )
    parser.add_argument("--run-folders", type=Path, nargs="+", default=[], help="split: saved runs to test")
    parser.add_argument("--results", type=Path, nargs="+", default=[],
                        help="runlength: `oracle` results files of one recipe at several schedule lengths")  # fmt: skip
    parser.add_argument("--target", type=float, default=0.0,
                        help="runlength: the test error to reach (0: the paper's for the model and setting)")  # fmt: skip
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--bf16", action="store_true",
                        help="each training step's forward and loss under CPU autocast to bfloat16 (train.precision)")  # fmt: skip
    parser.add_argument("--runs", type=Path, default=Path("/tmp/attnlab-glimpse"), help="run folders")
    parser.add_argument("--label", default="", help="appended to the accuracy results file's name")
    parser.add_argument("--cost-batch", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args(argv)
    unknown = [s for s in args.settings.split(",") if s not in SETTINGS and s not in PAIRS]
    if unknown:
        parser.error(f"--settings: no setting {', '.join(map(repr, unknown))}; of {', '.join([*SETTINGS, *PAIRS])}")
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.which in ("figures", "reference"):
        (figures if args.which == "figures" else reference)(args)
        return 0
    if args.which == "oracle":
        result = oracle_policy(args)
        path = common.write_result(result, f"glimpse-oracle{'-' + args.label if args.label else ''}.json")
        print("wrote", path)
        return 0
    if args.which == "split":
        print("wrote", common.write_result(split(args), f"glimpse-split{'-' + args.label if args.label else ''}.json"))
        return 0
    if args.which == "runlength":
        if not args.results or "," in args.settings:
            parser.error("runlength: --settings SETTING (one) and --results FILE [FILE ...], one recipe's runs")
        name = f"glimpse-runlength{'-' + args.label if args.label else ''}.json"
        print("wrote", common.write_result(run_length(args), name))
        return 0
    if args.which == "table":
        print("wrote", common.write_result(table(args), "glimpse-accuracy-seeds.json"))
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
