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
and every --save-every steps (--runs/<setting>/ram-guided-s<seed>/oracle-resume.pt, or ram-oracle-s<seed>):
the same command run again after a kill resumes there and ends as the run would have without the kill.

`split` scores saved runs (--run-folders) at their policy's means on the test canvases, where the guide
looks (--guide-order) and on 10,000 fresh canvases of training digits, with where their glimpses went
against the digits (glimpse_guided.split): policy or reader, fitting or generalising.

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
import statistics
from dataclasses import replace
from pathlib import Path

import torch

import common
from attnlab.glimpse import sampled_errors
from attnlab.models import build_model
from attnlab.train import ensure, load_run, resolve
from attnlab.train.checkpoint import ship_run
from attnlab.train.cost import multiply_adds, seconds_per_example
from attnlab.train.vectorised import ensure_seeds
from common import FIGURES, RESULTS
from glimpse_guided import glimpse_distances, guided_view_error, oracle_policy, run_length, split
from glimpse_settings import (
    BASELINE_KEY,
    BASELINES,
    COST_DRAM,
    COST_DRAM_CONV,
    COST_DRAM_SUM,
    COST_RAM,
    COST_SIZES,
    DEFAULT_LR,
    GLIMPSE_MODELS,
    PAIRS,
    PAPER_SOURCE,
    SETTINGS,
    TRAIN_IMAGES,
    run_config,
)


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
    parser.add_argument("--save-every", type=int, default=1000,
                        help="oracle: keep the run's state every this many steps too, besides at evaluations (0: at those only)")  # fmt: skip
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
    parser.add_argument("--at", type=int, nargs="+", default=[],
                        help="runlength: also the law's error at these schedule lengths (steps)")  # fmt: skip
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
