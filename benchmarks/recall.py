"""Associative recall across the sequence families: accuracy against the number of pairs, and MQAR at scale.

    python benchmarks/recall.py pairs                     # every family at 2, 4, 8 pairs, 3 seeds
    python benchmarks/recall.py pairs --models transformer,lm --pairs 8
    python benchmarks/recall.py mqar                      # 32 pairs, 64 keys and values, 128 tokens
    python benchmarks/recall.py mqar --min-pairs 4        # trained on 4 to 32 pairs, tested on 32
    python benchmarks/recall.py figures                   # docs/figures/recall-pairs.png from the JSON

`pairs` trains each family on "associative_recall" (attnlab.tasks.recall: `k1 v1 .. kN vN ? q`,
16 keys, 16 values) at each --pairs value. `mqar` trains on multi-query recall at the scale of
Arora et al. 2023 ("Zoology"): 32 pairs drawn from 64 keys and 64 values, all 32 keys asked,
filler up to 128 tokens (`RecallConfig.seq_len`; how the layout differs from Zoology's is in the
task's module docstring). Every run has the same budget unless --model-steps says otherwise:
--steps optimizer steps of --batch-size examples at peak learning rate --lr, stopped early once
validation accuracy reaches --target; the output states each family's budget.

The families run with their registry defaults plus MODELS below (the positions of the two
transformer families are stated there so the numbers do not move with a default). Each run
trains in its own folder under --runs (a finished run is reused, a killed one resumed by
attnlab.train.ensure), and the results file is rewritten after every run, so a long sweep can
be stopped and started again. One process trains at a time, with --threads torch threads; to use
two cores, start two processes on disjoint --models with different --label values (the figure
reads every recall-pairs*.json):

    python benchmarks/recall.py pairs --models transformer,lm,mlp,cnn,encdec --label a &
    python benchmarks/recall.py pairs --models rnn,gru,lstm,bilstm --label b &

Writes benchmarks/results/recall-{pairs,mqar}.json (per run: the equivalent `attnlab train`
command, seed, test accuracy, steps, whether it stopped at the target, training and wall seconds;
per family and setting: mean, std, min, max over seeds; the machine) and prints a table.
"""

from __future__ import annotations

import argparse
import json
import shlex
import statistics
import time
from pathlib import Path

import torch

import common
from attnlab.train import ensure, resolve
from common import FIGURES, RESULTS

FAMILIES = ("mlp", "cnn", "rnn", "gru", "lstm", "bilstm", "transformer", "lm", "encdec")
# Stated rather than left to the registry defaults (no convolution, "sinusoidal" positions: kept for
# the positional tasks and every earlier run). Recall takes two steps: bring each value next to its
# key, then match the query against the keys. A width-3 ShortConv before each attention (Zoology's
# attention baseline, Arora et al. 2023) does the first step for every position, so attention only
# has to match; without it the tagger needs thousands of steps to grow a head that looks one token
# aside, and the causal lm did not grow one in 10,000 (docs/families.md, "Associative recall").
# T5's relative bias stays: with it the tagger alone solves 8 pairs (the runs before the convolution).
# The encoder-decoder gets the same: with the registry's defaults its encoder is the plain tagger's, and
# it recalled 2 pairs (99.2-99.8%) but not 4 (30.9-32.0%, 3 seeds; recall-plain-encdec-pairs.json).
MODELS: dict[str, dict] = {
    "transformer": {"positions": "t5", "short_conv": 3},
    "lm": {"positions": "t5", "short_conv": 3},
    "encdec": {"positions": "t5", "short_conv": 3},
}
MQAR = {"num_pairs": 32, "num_keys": 64, "num_values": 64, "num_queries": 32, "seq_len": 128}
PARTS = {
    "pairs": {"models": FAMILIES, "key": "num_pairs"},
    "mqar": {"models": ("transformer", "lm", "lstm", "gru", "cnn"), "key": None},
}


def model_values(args, model: str) -> dict:
    """The family's settings of this sweep: MODELS, then --set."""
    return {**MODELS.get(model, {}), **{k: v for family, k, v in args.set if family == model}}


def run_config(args, model: str, task: dict, seed: int) -> dict:
    """The plain-data run configuration of one family, task setting and seed."""
    steps = dict(args.model_steps).get(model, args.steps)
    return {
        "task": {"name": "associative_recall", **task},
        "model": {"name": model, **model_values(args, model)},
        "train": {
            "steps": steps,
            "batch_size": args.batch_size,
            "lr": args.lr,
            "eval_every": args.eval_every,
            "target": args.target,
            "seed": seed,
            "device": "cpu",
        },
    }


def cli_command(config: dict, folder: Path) -> str:
    """The `attnlab train` command line that trains config into folder."""
    words = ["attnlab", "train", config["task"]["name"], "--model", config["model"]["name"]]
    for section in ("task", "model", "train"):
        words += [f"--{section}.{k}={v}" for k, v in config[section].items() if k != "name"]
    return shlex.join([*words, "--out", str(folder)])


def settings(args, part: str) -> list[tuple[str, dict]]:
    """(label, task values) per task setting of the part."""
    if part == "mqar":
        mixture = {} if args.min_pairs is None else {"min_pairs": args.min_pairs}
        return [("mqar", {**MQAR, **mixture})]
    return [(str(n), {"num_pairs": n}) for n in args.pairs]


def summarise(runs: list[dict]) -> list[dict]:
    """mean, std, min, max of test accuracy over seeds, per (model, setting), in run order."""
    groups: dict[tuple[str, str], list[float]] = {}
    for r in runs:
        groups.setdefault((r["model"], r["setting"]), []).append(r["accuracy"])
    return [
        {
            "model": m,
            "setting": s,
            "mean": statistics.mean(a),
            "std": statistics.stdev(a) if len(a) > 1 else 0.0,
            "min": min(a),
            "max": max(a),
            "n": len(a),
        }
        for (m, s), a in groups.items()
    ]


def bench(args, part: str) -> dict:
    meta = common.machine()
    models = args.models.split(",") if args.models else list(PARTS[part]["models"])
    result = {
        "task": "associative_recall",
        "part": part,
        "key": PARTS[part]["key"],
        "budget": {m: run_config(args, m, {}, 0)["train"] | {"seed": list(args.seeds)} for m in models},
        "models": {m: model_values(args, m) for m in models},
        "command": meta["command"],
        "date": meta["date"],
        "machine": meta,
        "runs": [],
        "summary": [],
    }
    name = f"recall-{part}{'-' + args.label if args.label else ''}.json"
    for model in models:
        for label, task in settings(args, part):
            for seed in args.seeds:
                folder = args.runs / part / model / label / f"seed{seed}"
                config = run_config(args, model, task, seed)
                started = time.perf_counter()
                summary = ensure(resolve(config), folder, progress=args.progress)
                wall = round(time.perf_counter() - started, 1)
                result["runs"].append(
                    {
                        "model": model,
                        "setting": label,
                        "seed": seed,
                        "accuracy": summary["accuracy"],
                        "steps": summary["step"],
                        "stopped_early": summary.get("stopped_early", False),
                        "train_seconds": summary["seconds"],
                        "wall_seconds": wall,
                        "parameters": summary["parameters"],
                        "command": cli_command(config, folder),
                    }
                )
                print(
                    f"{part} {model} {label} seed {seed}: accuracy {summary['accuracy']:.4f} at step "
                    f"{summary['step']} ({summary['seconds']:.0f} s training, {wall:.0f} s here)",
                    flush=True,
                )
                result["summary"] = summarise(result["runs"])
                common.write_result(result, name)  # after every run: a stopped sweep keeps what it has
    return result


def table(result: dict) -> str:
    """Markdown: a row per family, a column per setting, mean ± std (min-max) over seeds."""
    columns = list(dict.fromkeys(s["setting"] for s in result["summary"]))
    cells = {(s["model"], s["setting"]): s for s in result["summary"]}
    key = result["key"] or "setting"
    lines = [
        "| model | steps | lr | " + " | ".join(f"{key}={c}" for c in columns) + " |",
        "|" + "---|" * (3 + len(columns)),
    ]
    for model, budget in result["budget"].items():
        row = []
        for c in columns:
            s = cells.get((model, c))
            row.append(
                "pending"
                if s is None
                else f"{s['mean']:.3f} ± {s['std']:.3f} ({s['min']:.3f}-{s['max']:.3f}, n={s['n']})"
            )
        lines.append(f"| {model} | {budget['steps']} | {budget['lr']:g} | " + " | ".join(row) + " |")
    return "\n".join(lines)


def figures(args) -> None:
    """docs/figures/recall-pairs.png from recall-pairs.json and any recall-pairs-LABEL.json beside it."""
    from attnlab.viz.curves import draw_comparison

    paths = sorted(RESULTS.glob("recall-pairs*.json"))
    if not paths:
        print(f"no {RESULTS / 'recall-pairs.json'}: run `python benchmarks/recall.py pairs` first")
        return
    # one entry per (family, pairs, seed): a run reused by several files is counted once
    runs = list(
        {(r["model"], r["setting"], r["seed"]): r for p in paths for r in json.loads(p.read_text())["runs"]}.values()
    )
    out = FIGURES / "recall-pairs.png"
    draw_comparison(
        summarise(runs),
        metric="test accuracy",
        x_label="key-value pairs",
        title="associative recall (min-max over seeds)",
        path=out,
    )
    print(f"wrote {out} from {', '.join(p.name for p in paths)}")


def _model_steps(text: str) -> list[tuple[str, int]]:
    pairs = [item.partition("=") for item in text.split(",") if item]
    if any(not sep or not value.isdigit() for _, sep, value in pairs):
        raise argparse.ArgumentTypeError(f"expected model=steps,model=steps; got {text!r}")
    return [(name, int(value)) for name, _, value in pairs]


def _settings(text: str) -> list[tuple[str, str, object]]:
    """ "family.key=value,family.key=value" -> [(family, key, value)], values parsed as YAML scalars."""
    import yaml

    out = []
    for item in filter(None, text.split(",")):
        name, sep, value = item.partition("=")
        family, dot, key = name.partition(".")
        if not sep or not dot or not family or not key:
            raise argparse.ArgumentTypeError(f"expected family.key=value; got {item!r}")
        out.append((family, key, yaml.safe_load(value)))
    return out


def _ints(text: str) -> list[int]:
    try:
        return [int(v) for v in text.split(",") if v]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers; got {text!r}") from None


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("part", choices=[*PARTS, "figures"])
    parser.add_argument("--models", default="", help="comma-separated families (default: the part's list)")
    parser.add_argument("--pairs", type=_ints, default=[2, 4, 8], help="num_pairs values of `pairs`")
    parser.add_argument("--seeds", type=_ints, default=[0, 1, 2])
    parser.add_argument("--steps", type=int, default=5000)
    parser.add_argument(
        "--model-steps", type=_model_steps, default=[], help="per-family steps that override --steps, e.g. lm=8000"
    )
    parser.add_argument(
        "--set",
        type=_settings,
        default=[],
        help="family settings over MODELS, e.g. transformer.num_heads=1 (use another --runs)",
    )
    parser.add_argument(
        "--min-pairs",
        type=int,
        default=None,
        help="mqar: training examples hold K to 32 pairs, each count equally likely (validation and test: 32)",
    )
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--eval-every", type=int, default=200)
    parser.add_argument("--target", type=float, default=0.99, help="stop a run once validation accuracy reaches this")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (0: torch's default)")
    parser.add_argument("--runs", type=Path, default=Path("/tmp/attnlab-recall"), help="run folders")
    parser.add_argument("--label", default="", help="appended to the results file's name")
    parser.add_argument("--progress", action="store_true", help="show each run's progress bar")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.part == "figures":
        figures(args)
        return 0
    result = bench(args, args.part)
    print(table(result))
    print(f"wrote {RESULTS / f'recall-{args.part}'}{'-' + args.label if args.label else ''}.json")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
