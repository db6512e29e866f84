"""Memory machines against recurrent and attention baselines on the NTM's tasks, at lengths never trained on.

    python benchmarks/machines.py copy --models ntm,dnc,lstm,transformer --steps 4000 --model-steps dnc=2500
    python benchmarks/machines.py recall --models ntm,lstm,transformer --steps 4000 --model-steps ntm=3000
    python benchmarks/machines.py figures      # --label L: those of the run written with --label L
    python benchmarks/machines.py reference    # the copy NTM's run -> src/attnlab/tour/reference/ntm-copy

`copy` trains every family on "ntm_copy" with lengths 1-20 (Graves et al. 2014, section 4.1),
then evaluates the same weights on sequences of exactly 20, 30, 40, 50 and 120 vectors
(`attnlab.train.retarget` rebuilds the model for the longer task and loads the weights).
`recall` trains on "ntm_associative_recall" with 2-6 items and tests at 6, 12 and 15 items
(section 4.3). The metric is the paper's: bit errors per sequence.

Each family trains in its own run folder under --runs (reused when finished, resumed when killed).
Writes benchmarks/results/machines-{copy,recall}.json (configs, learning curves, errors per test
length, training seconds, machine) and, with `figures`, docs/figures/machines-{copy,recall}.png and
the NTM's read and write weightings on one test sequence, docs/figures/machines-{copy,recall}-ntm.png.
`reference` copies the copy NTM's run (config, weights, learning curve) into the package, where the
tour's machine section tests it at lengths its own short run never reaches.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

import common
from attnlab.train import ensure, evaluate, load_run, resolve, retarget
from attnlab.train.examples import traced_examples
from common import FIGURES, RESULTS

# The sizes of each family: the NTM's and the LSTM's follow Graves et al. 2014 (section 4: a
# 100-unit LSTM controller, 128 x 20 memory; 3 x 256 LSTM layers). The DNC trains with 32 slots
# (its temporal link matrix costs n^2 a step) and is tested with TEST_MEMORY: no weight depends on n.
MODELS = {
    "ntm": {"controller_size": 100, "memory_size": 128, "word_size": 20},
    "dnc": {"controller_size": 100, "memory_size": 32, "word_size": 20, "num_reads": 2},
    "lstm": {"embed_dim": 64, "hidden_dim": 256, "num_layers": 3},
    "transformer": {"embed_dim": 128, "num_heads": 4, "num_layers": 3, "ff_dim": 512, "positions": "sinusoidal"},
}
TASKS = {
    "copy": {
        "name": "ntm_copy",
        "train": {"min_length": 1, "max_length": 20},
        "key": "length",
        "tests": (20, 30, 40, 50, 120),
        "test": lambda n: {"min_length": n, "max_length": n},
    },
    "recall": {
        "name": "ntm_associative_recall",
        "train": {"min_items": 2, "max_items": 6},
        "key": "items",
        "tests": (6, 12, 15),
        "test": lambda n: {"min_items": n, "max_items": n},
    },
}
# Variants of a family under their own label: the NTM paper's feed-forward controller, which it
# found learns associative recall faster than the LSTM one (Graves et al. 2014, fig. 10).
MODELS["ntm-feedforward"] = {**MODELS["ntm"], "controller": "feedforward"}
VARIANTS = {"ntm-feedforward": "ntm"}
TEST_MEMORY = {
    "ntm": 128,
    "ntm-feedforward": 128,
    "dnc": 128,
}  # slots at test time: 120 vectors need at least 122 writes' room
PAPER = {
    "copy": "NTM copies correctly at 30, 50 and 120; an LSTM degrades beyond 20 (Graves et al. 2014, fig. 4-5)",
    "recall": "NTM near perfect to 12 items, under 1 bit error per sequence at 15 (Graves et al. 2014, fig. 11)",
}


def run_config(args, which: str, model: str) -> dict:
    spec = TASKS[which]
    slots = {"memory_size": args.slots} if args.slots and model in TEST_MEMORY else {}
    return {
        "task": {"name": spec["name"], **spec["train"]},
        "model": {"name": VARIANTS.get(model, model), **MODELS[model], **slots},
        "train": {
            "steps": dict(args.model_steps).get(model, args.steps),
            "batch_size": args.batch_size,
            "lr": args.lr,
            "warmup_steps": args.warmup,
            "eval_every": args.eval_every,
            "eval_size": 256,
            "clip_norm": 10.0,
            "seed": args.seed,
            "weight_decay": 0.0,
            "target": args.target,
            "path": args.path,
        },
    }


def bench(args, which: str) -> dict:
    spec = TASKS[which]
    meta = common.machine()
    result = {
        "task": spec["name"],
        "train": spec["train"],
        "key": spec["key"],
        "paper": PAPER[which],
        "command": meta["command"],
        "date": meta["date"],
        "machine": meta,
        "models": {},
    }
    for model in args.models.split(","):
        folder = args.runs / which / model
        config = run_config(args, which, model)
        started = time.perf_counter()
        ensure(resolve(config), folder, progress=True)
        run = load_run(folder)
        curve = [
            {k: r[k] for k in ("step", "bit_errors", "bits", "seconds")} for r in run.metrics if r.get("split") == "val"
        ]
        tests = {}
        slots = (args.test_slots or TEST_MEMORY[model]) if model in TEST_MEMORY else None  # memory machines only
        for n in spec["tests"]:
            memory = {"memory_size": slots} if slots else None
            longer = retarget(run, model=memory, **spec["test"](n))
            torch.manual_seed(0)
            tests[str(n)] = evaluate(longer.model, longer.task, longer.task.eval_set(args.test_size, "test"), chunk=64)
            if memory is not None:
                tests[str(n)]["slots"] = memory["memory_size"]
            print(f"{which} {model}: {spec['key']} {n}: bit errors/seq {tests[str(n)]['bit_errors']:.2f}", flush=True)
        summary = next(r for r in reversed(run.metrics) if r.get("split") == "test")
        result["models"][model] = {
            "config": config,
            "parameters": summary["parameters"],
            "steps": summary["step"],
            "train_seconds": summary["seconds"],
            "wall_seconds": round(time.perf_counter() - started, 1),
            "test_memory_size": slots,
            "curve": curve,
            "tests": tests,
            "run": str(folder),
        }
    return result


def table(result: dict) -> str:
    tests = list(next(iter(result["models"].values()))["tests"])
    head = "| model | params | steps | train s | " + " | ".join(f"{result['key']} {n}" for n in tests) + " |"
    lines = [head, "|" + "---|" * (4 + len(tests))]
    for model, r in result["models"].items():
        cells = " | ".join(f"{r['tests'][n]['bit_errors']:.2f}" for n in tests)
        lines.append(f"| {model} | {r['parameters']:,} | {r['steps']} | {r['train_seconds']:.0f} | {cells} |")
    return "\n".join(lines)


def figures(args) -> None:
    from attnlab.viz.machines import draw_lengths, draw_machine

    suffix = f"-{args.label}" if args.label else ""  # --label picks the results of a labelled run
    for which in TASKS:
        path = RESULTS / f"machines-{which}{suffix}.json"
        if not path.is_file():
            continue
        result = json.loads(path.read_text())
        draw_lengths(result, FIGURES / f"machines-{which}{suffix}.png")
        n = TASKS[which]["tests"][1]
        for model in ("ntm", "dnc"):
            entry = result["models"].get(model)
            if not entry or not Path(entry["run"]).is_dir():
                continue
            slots = entry.get("test_memory_size") or TEST_MEMORY[model]
            run = retarget(load_run(entry["run"]), model={"memory_size": slots}, **TASKS[which]["test"](n))
            seen = traced_examples(run, 1)
            draw_machine(
                seen.trace,
                seen.data,
                seen.logits,
                FIGURES / f"machines-{which}{suffix}-{model}.png",
                title=f"{model.upper()}, {which}, {TASKS[which]['key']} {n}, {slots} slots",
            )
        print(f"figures for {which}{suffix} written")


def reference(args) -> None:
    """Ship the trained copy NTM (its config, weights and learning curve) as the tour's reference."""
    from attnlab.tour.machines import REFERENCE
    from attnlab.train.checkpoint import ship_run

    folder = args.runs / "copy" / "ntm"
    load_run(folder)  # refuses a folder that is not a loadable run
    size = ship_run(folder, REFERENCE)
    print(f"copied {folder} to {REFERENCE} ({size / 1024:.0f} KiB)")


def _model_steps(text: str) -> list[tuple[str, int]]:
    pairs = [item.partition("=") for item in text.split(",") if item]
    if any(not sep or not value.isdigit() for _, sep, value in pairs):
        raise argparse.ArgumentTypeError(f"expected model=steps,model=steps; got {text!r}")
    return [(name, int(value)) for name, _, value in pairs]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("which", choices=[*TASKS, "figures", "reference"])
    parser.add_argument("--models", default="ntm,dnc,lstm,transformer")
    parser.add_argument("--steps", type=int, default=4000)
    parser.add_argument(
        "--model-steps",
        type=_model_steps,
        default=[],
        help="per-family steps that override --steps, e.g. dnc=2500,ntm=3000",
    )
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--warmup", type=int, default=100)
    parser.add_argument("--eval-every", type=int, default=250)
    parser.add_argument(
        "--target",
        type=float,
        default=None,
        help="stop a run early once its validation bit errors per sequence reach this",
    )
    parser.add_argument(
        "--path",
        default="compiled",
        choices=["eager", "fast", "compiled"],
        help="train.path: the NTM's and DNC's compiled steps are the fastest on a CPU (about 60 s of compiling first)",
    )
    parser.add_argument(
        "--slots", type=int, default=0, help="memory slots the NTM and DNC train with (default: MODELS')"
    )
    parser.add_argument(
        "--test-slots",
        type=int,
        default=0,
        help="memory slots the NTM and DNC are tested with at every length (default: TEST_MEMORY)",
    )
    parser.add_argument("--test-size", type=int, default=128, help="sequences per test length")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument(
        "--runs", type=Path, default=Path("runs/machines"), help="run folders (kept: a killed run resumes)"
    )
    parser.add_argument("--label", default="", help="appended to the results file's name")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.which == "figures":
        figures(args)
        return 0
    if args.which == "reference":
        reference(args)
        return 0
    result = bench(args, args.which)
    out = common.write_result(result, f"machines-{args.which}{'-' + args.label if args.label else ''}.json")
    print(table(result))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
