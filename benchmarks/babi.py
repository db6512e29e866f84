"""bAbI per-task test error of a model family trained through attnlab.train, over several seeds.

    python benchmarks/babi.py --setting generated --tasks 1,2 --steps 300         # seconds, no data
    ATTNLAB_DATA=../shared/data python benchmarks/babi.py --tasks 1 --steps 500
    ATTNLAB_DATA=../shared/data python benchmarks/babi.py --tasks all --steps 15000 --seeds 0 1 2 --eval-every 1000
    ATTNLAB_DATA=../shared/data python benchmarks/babi.py --tasks all --steps 6000 --linear-start --ls-patience 2
    ATTNLAB_DATA=../shared/data python benchmarks/babi.py --tasks all --steps 15000 --seeds 0 1 2 3 4 5 6 7 8 9 --together
    ATTNLAB_DATA=../shared/data python benchmarks/babi.py --tasks all --recipe paper --seeds 0 1 2 3 4 5 6 7 8 9 --together
    ATTNLAB_DATA=../shared/data python benchmarks/babi.py --tasks all --recipe paper --linear-start --seeds 0 1 2 3 4 5 6 7 8 9 --together
    ATTNLAB_DATA=../shared/data python benchmarks/babi.py --tasks all --recipe paper --linear-start \
        --encoding centred --empty-slots zero --clip-each --seeds 0 1 2 3 4 5 6 7 8 9 --together

docs/babi.md lists the exact commands behind its figures and what each measured.

Trains `--model` (memn2n or kvmemnn from attnlab.models.memory, or the lstm and transformer
readers of the flat rows) on the "babi" task (attnlab.tasks.babi) once per seed, each run in its
own folder (under `--run-dir`, a finished run is reused and a killed one resumed), then reads the per-task test error (`error_qa{N}` of the run's test summary) and
prints a table: mean and best error over the seeds per task, the mean over tasks and the failed
tasks (error > 5%), next to the joint-training figures of MemN2N PE LS RN (Sukhbaatar et al.
2015) in ../shared/REFERENCES.md, and (1k, `--tasks all`) the paper's own per-task errors of
that column. `--linear-start` runs memn2n's LS phase until the
validation loss stalls for `--ls-patience` evaluations (or until step `--ls-steps`). `--recipe paper`
trains as Sukhbaatar et al. 2015 did (`apply_recipe`: SGD, the lr halved every 15 of 60 epochs,
RN; with `--linear-start`, 30 epochs of LS first, ended at that epoch for every seed). `--encoding
centred --empty-slots zero --clip-each` adds the three places where the authors' released code
differs from the paper's text (attnlab.memory.memn2n); `--noise-scheme story` and
`--time-in-tables` add two more: the released code's random noise, and its clip of each word
table together with its time words; `--nil-gradient` one more: padding as its nil word, whose
gradient counts in that clip. The table also names the run selected by its
training error (on its own training questions, without random noise), as the paper kept its best
of 10 runs, and the one selected by validation error, beside the mean and spread over all runs.

For memn2n and kvmemnn it also scores the hop attention of each trained run on the test split:
per task, the share of questions whose hop-k largest weight falls on a supporting fact
(`Babi.support_attention`), for each hop and for any hop.

Writes benchmarks/results/babi-{model}-{setting}-{tasks}.json (configuration, per-task errors per
seed, supporting-fact attention, summary, training seconds, the step LS ended, machine).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

import attnlab.models.memory  # noqa: F401  (registers memn2n and kvmemnn)
import common
from attnlab.memory import hop_weights
from attnlab.tasks import TASKS
from attnlab.train import checkpoint, ensure, load_run, resolve
from attnlab.train.examples import traced_examples
from attnlab.train.loop import evaluate
from attnlab.train.vectorised import ensure_seeds

MEMORY = ("memn2n", "kvmemnn")
FAIL = 0.05  # a task fails above 5% test error (Weston et al. 2015)
# ../shared/REFERENCES.md, "Memory networks on bAbI": MemN2N PE LS RN, joint training, 20 tasks
PAPER = {
    "en": {
        "mean_error": 0.124,
        "failed": 11,
        "source": "Sukhbaatar et al. 2015, 3 hops; via Dehghani et al. 2019 Table 1",
        # per task, the same paper's Table 1 (its 1k "PE LS RN" joint column; these average to 12.4%)
        "per_task": [
            0.0,
            11.4,
            21.9,
            13.4,
            14.4,
            2.8,
            18.3,
            9.3,
            1.9,
            6.5,
            0.3,
            0.1,
            0.2,
            6.9,
            0.0,
            2.7,
            40.4,
            9.4,
            88.0,
            0.0,
        ],
    },
    "en-10k": {"mean_error": 0.075, "failed": 6, "source": "Graves et al. 2016 (DNC), text"},
}


def run_config(args, seed: int) -> dict:
    """The plain-data run configuration of one seed."""
    model = {"name": args.model, "embed_dim": args.embed_dim}
    if args.model in MEMORY:
        model["hops"] = args.hops
    if args.model == "memn2n":
        model.update(
            random_noise=args.random_noise,
            linear_start=args.linear_start,
            linear_start_patience=args.ls_patience,
            linear_start_steps=args.ls_steps,
            encoding=args.encoding,
            empty_slots=args.empty_slots,
        )
        if args.noise_scheme != "sentence":  # stated only when set, so earlier runs' folders still match
            model["noise_scheme"] = args.noise_scheme
        if args.time_in_tables:
            model["time_in_tables"] = True
        if args.nil_gradient:
            model["nil_gradient"] = True
    task = {"name": "babi", "tasks": args.tasks, "setting": args.setting, "memory_size": args.memory_size}
    if args.data_dir:
        task["data_dir"] = args.data_dir
    train_cfg = {"steps": args.steps, "batch_size": args.batch_size, "lr": args.lr, "seed": seed,
                 "eval_every": args.eval_every, "eval_size": 10**7, "device": args.device,
                 "warmup_steps": args.warmup_steps, "clip_norm": args.clip_norm, "min_lr_ratio": args.min_lr_ratio,
                 "optimizer": args.optimizer, "weight_decay": args.weight_decay, "schedule": args.schedule,
                 "decay_every": args.decay_every, "decay_start": args.decay_start,
                 "clip_each": args.clip_each}  # fmt: skip
    return {"task": task, "model": model, "train": train_cfg}


def train_questions(args) -> int:
    """The number of training questions of the run's tasks (after the validation hold-out)."""
    values = {k: v for k, v in run_config(args, args.seeds[0])["task"].items() if k != "name"}
    return len(TASKS.get("babi")(TASKS.build_config("babi", values, where="task")).data()["train"].inputs)


def apply_recipe(args) -> None:
    """Fill args from --recipe paper and --epochs: Sukhbaatar et al. 2015, sec. 4.2, joint training.

    SGD without momentum or weight decay, lr 0.01 on the cost summed over a batch of 32 (0.32 on
    the mean this loop takes), halved every 15 epochs over 60 epochs on 1k (every 5 of 20 on 10k),
    the summed cost's gradient clipped to norm 40 (the mean's to 40 / 32 = 1.25), random noise 10%. With --linear-start, as the authors' released
    joint-training script sets it: lr 0.005 (0.16 here) held for 30 epochs of LS (--ls-epochs),
    then the softmax back and the 60 epochs above from 0.005. The LS phase ends at that epoch for
    every seed (not on a stalled validation loss), so the seeds still train together.
    """
    if args.recipe == "paper":
        scale = args.batch_size  # the paper's cost is a sum over the batch; the loop's is a mean
        args.optimizer, args.weight_decay, args.schedule, args.warmup_steps = "sgd", 0.0, "step", 0
        args.lr = (0.005 if args.linear_start else 0.01) * scale
        args.clip_norm, args.random_noise = 40.0 / scale, 0.1  # the paper clips the summed cost's gradient at 40
        epochs, every = (60, 15) if args.setting != "en-10k" else (20, 5)
        if args.linear_start:
            args.ls_epochs = args.ls_epochs or (30 if args.setting != "en-10k" else 10)
            args.ls_patience = 0
            epochs += args.ls_epochs
        args.epochs = args.epochs or epochs
        args.decay_every_epochs = args.decay_every_epochs or every
    if args.epochs or args.decay_every_epochs or args.ls_epochs:
        per_epoch = train_questions(args) / args.batch_size
        if args.epochs:
            args.steps = round(args.epochs * per_epoch)
            args.eval_every = args.eval_every if args.eval_every_set else max(1, round(per_epoch))
        if args.decay_every_epochs:
            args.decay_every = round(args.decay_every_epochs * per_epoch)
        if args.ls_epochs:  # LS ends at this step (an evaluation's, where it is decided); the decay starts there
            args.ls_steps = args.decay_start = args.eval_every * max(
                1, round(args.ls_epochs * per_epoch / args.eval_every)
            )


def last_val_error(folder: Path) -> float:
    """1 - the validation accuracy of the run's last evaluation (the weights its test record scores)."""
    val = [r for r in checkpoint.read_metrics(folder) if r.get("split") == "val"]
    return 1.0 - val[-1]["accuracy"]


def support_attention(run, chunk: int = 500) -> dict[int, dict[str, float]]:
    """Per task, how often each hop's largest weight on the test split is a supporting fact.

    The whole split goes through one capture in chunks of `chunk` stories, which bounds the memory.
    """
    seen = traced_examples(run, 10**7, chunk=chunk)
    weights = hop_weights(seen.trace)  # (r, K, m)
    return run.task.support_attention(weights, run.task.support("test"), run.task.task_ids("test"))


def ls_end(folder: Path) -> int | None:
    """The step of the evaluation that ended memn2n's linear-start phase (None: never or no LS)."""
    phase = 1.0 if checkpoint.load_config(folder)["model"].get("linear_start") else None
    for record in checkpoint.read_metrics(folder):
        if phase == 1.0 and record.get("linear_start") == 0.0:
            return record["step"]
        phase = record.get("linear_start", phase)
    return None


def support_table(per_seed: dict[int, dict[int, dict[str, float]]]) -> str:
    """Mean over seeds, per task, of the share of questions each hop's argmax is a supporting fact."""
    first = next(iter(per_seed.values()))
    keys = [k for k in next(iter(first.values())) if k != "questions"]
    lines = [
        "supporting-fact attention (% of test questions whose largest weight is on a supporting fact)",
        f"{'task':>6} " + " ".join(f"{k:>8}" for k in keys),
    ]
    for n in sorted(first):
        means = [100 * statistics.mean(s[n][k] for s in per_seed.values()) for k in keys]
        lines.append(f"{n:>6} " + " ".join(f"{v:>8.1f}" for v in means))
    return "\n".join(lines)


def training_error(run) -> float:
    """1 - the accuracy of the run's final weights on its own training questions (eval mode, so no
    random noise): what the paper chose its best of 10 runs by."""
    return 1.0 - evaluate(run.model, run.task, run.task.data()["train"].batch(slice(None)))["accuracy"]


def _selected(per_seed: dict[int, dict[int, float]], tasks: list[int], by: dict[int, float], key: str) -> dict:
    seed = min(per_seed, key=lambda s: by[s])
    return {
        "seed": seed,
        key: by[seed],
        "mean_over_tasks": statistics.mean(per_seed[seed].values()),
        "failed": sum(e > FAIL for e in per_seed[seed].values()),
        "error": {str(n): per_seed[seed][n] for n in tasks},
    }


def summarise(
    per_seed: dict[int, dict[int, float]], val_error: dict[int, float], train_error: dict[int, float] | None = None
) -> dict:
    """Per-task mean and best error over seeds, the mean over tasks and the failed tasks of each, and
    the run selected by its training error (as the paper kept its best of 10 runs) and by its
    validation error."""
    tasks = sorted(next(iter(per_seed.values())))
    mean = {n: statistics.mean(errors[n] for errors in per_seed.values()) for n in tasks}
    best = {n: min(errors[n] for errors in per_seed.values()) for n in tasks}
    seed_means = [statistics.mean(errors.values()) for errors in per_seed.values()]
    seed_failed = [sum(e > FAIL for e in errors.values()) for errors in per_seed.values()]
    return {
        "seed_mean_over_tasks": dict(zip(map(str, per_seed), seed_means)),
        "seed_failed": dict(zip(map(str, per_seed), seed_failed)),
        "spread_mean_over_tasks": [min(seed_means), max(seed_means)],
        "std_mean_over_tasks": statistics.stdev(seed_means) if len(seed_means) > 1 else 0.0,
        "tasks": tasks,
        "mean_error": mean,
        "best_error": best,
        "mean_over_tasks": statistics.mean(mean.values()),
        "best_seed_mean_over_tasks": min(seed_means),
        "failed_mean": [n for n in tasks if mean[n] > FAIL],
        "failed_best_seed": min(sum(e > FAIL for e in errors.values()) for errors in per_seed.values()),
        "selected_by_validation": _selected(per_seed, tasks, val_error, "val_error"),
        **({"selected_by_training": _selected(per_seed, tasks, train_error, "train_error")} if train_error else {}),
    }


def table(summary: dict, setting: str, all_tasks: bool) -> str:
    per_task = PAPER.get(setting, {}).get("per_task") if all_tasks else None
    lines = [f"{'task':>6} {'mean err %':>11} {'best err %':>11}" + (f" {'paper %':>8}" if per_task else "")]
    for n in summary["tasks"]:
        flag = "  failed" if summary["mean_error"][n] > FAIL else ""
        paper_cell = f" {per_task[n - 1]:>8.1f}" if per_task else ""
        lines.append(
            f"{n:>6} {100 * summary['mean_error'][n]:>11.1f} {100 * summary['best_error'][n]:>11.1f}{paper_cell}{flag}"
        )
    mean, best = 100 * summary["mean_over_tasks"], 100 * summary["best_seed_mean_over_tasks"]
    lines.append(f"{'mean':>6} {mean:>11.1f} {best:>11.1f}")
    lines.append(
        f"failed (> 5%): {len(summary['failed_mean'])} of {len(summary['tasks'])} by mean error, "
        f"{summary['failed_best_seed']} for the best seed"
    )
    per_seed = ", ".join(
        f"seed {s}: {100 * m:.1f}% ({summary['seed_failed'][s]} failed)"
        for s, m in summary["seed_mean_over_tasks"].items()
    )
    low, high = (100 * v for v in summary["spread_mean_over_tasks"])
    lines.append(f"per seed: {per_seed}; spread {low:.1f}-{high:.1f}%, std {100 * summary['std_mean_over_tasks']:.1f}")
    for key, what in (("selected_by_training", "train_error"), ("selected_by_validation", "val_error")):
        chosen = summary.get(key)
        if chosen:
            lines.append(
                f"selected by {what.replace('_', ' ')} ({100 * chosen[what]:.1f}%): seed {chosen['seed']}, "
                f"test {100 * chosen['mean_over_tasks']:.1f}% mean, {chosen['failed']} failed"
            )
    paper = PAPER.get(setting)
    if paper is not None:
        note = "" if all_tasks else " (20-task figures; this run has fewer tasks)"
        lines.append(
            f"paper, MemN2N PE LS RN joint: mean error {100 * paper['mean_error']:.1f}%, "
            f"failed {paper['failed']}{note} [{paper['source']}]"
        )
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=[*MEMORY, "lstm", "transformer"], default="memn2n")
    parser.add_argument("--tasks", default="1", help='comma-separated task numbers, or "all" (joint)')
    parser.add_argument("--setting", choices=["en", "en-10k", "generated"], default="en")
    parser.add_argument("--data-dir", default="", help="folder holding babi/ (default: env ATTNLAB_DATA)")
    parser.add_argument("--steps", type=int, default=2000, help="optimizer steps per seed")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument(
        "--together",
        action="store_true",
        help="train the seeds as one vectorised model (attnlab.train.vectorised) where the model allows",
    )
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=0.01)
    parser.add_argument("--eval-every", type=int, default=500)
    parser.add_argument("--embed-dim", type=int, default=50)
    parser.add_argument("--hops", type=int, default=3)
    parser.add_argument("--memory-size", type=int, default=50)
    parser.add_argument("--random-noise", type=float, default=0.1, help="memn2n RN rate")
    parser.add_argument("--linear-start", action="store_true", help="memn2n: start in the LS phase")
    parser.add_argument("--ls-patience", type=int, default=1, help="LS ends after this many stalled evaluations")
    parser.add_argument("--ls-steps", type=int, default=0, help="LS ends at this step at the latest (0: no limit)")
    parser.add_argument(
        "--ls-epochs",
        type=float,
        default=0,
        help="LS ends after this many epochs, for every seed; the lr decay starts there "
        "(sets --ls-steps; --recipe paper: 30 on 1k, 10 on 10k)",
    )
    parser.add_argument(
        "--encoding",
        choices=["position", "centred", "bow"],
        default="position",
        help="memn2n sentence encoding: the paper's PE, or the released code's centred PE",
    )
    parser.add_argument(
        "--noise-scheme",
        choices=["sentence", "story"],
        default="sentence",
        help="memn2n RN: an empty memory before each sentence (the paper's text) or the released code's",
    )
    parser.add_argument(
        "--time-in-tables",
        action="store_true",
        help="memn2n with --clip-each: each temporal table clipped with its word table (released code)",
    )
    parser.add_argument(
        "--nil-gradient",
        action="store_true",
        help="memn2n: padding's gradient reaches the nil row and counts in clipping (released code)",
    )
    parser.add_argument(
        "--empty-slots",
        choices=["mask", "zero"],
        default="mask",
        help="memn2n: the softmax over the story's sentences, or over every slot (released code)",
    )
    parser.add_argument(
        "--clip-each",
        action="store_true",
        help="clip each weight matrix's gradient alone by its spectral norm (released code)",
    )
    parser.add_argument("--warmup-steps", type=int, default=0)
    parser.add_argument("--clip-norm", type=float, default=40.0, help="gradient norm clipping (paper: 40)")
    parser.add_argument("--min-lr-ratio", type=float, default=0.1, help="cosine decay floor, a fraction of lr")
    parser.add_argument("--optimizer", choices=["adamw", "sgd"], default="adamw")
    parser.add_argument("--weight-decay", type=float, default=0.01, help="on matrices only")
    parser.add_argument("--schedule", choices=["cosine", "step"], default="cosine")
    parser.add_argument("--decay-every", type=int, default=0, help='"step": halve the lr every this many steps')
    parser.add_argument("--decay-start", type=int, default=0, help='"step": the lr is held until this step')
    parser.add_argument("--epochs", type=float, default=0, help="train this many epochs (sets --steps)")
    parser.add_argument(
        "--decay-every-epochs", type=float, default=0, help='"step": halve the lr every this many epochs'
    )
    parser.add_argument(
        "--recipe",
        choices=["paper"],
        default=None,
        help="MemN2N's joint-training recipe (Sukhbaatar et al. 2015): SGD, step decay, epochs, RN",
    )
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    parser.add_argument("--run-dir", type=Path, default=None, help="keep the runs here (default: a temporary folder)")
    parser.add_argument("--out", type=Path, default=None, help="default: in benchmarks/results")
    args = parser.parse_args(argv)
    args.eval_every_set = any(a.startswith("--eval-every") for a in (argv if argv is not None else sys.argv[1:]))
    torch.set_num_threads(args.threads)
    apply_recipe(args)
    name = f"babi-{args.model}-{args.setting}-{args.tasks.replace(',', '-').replace(' ', '')}"
    per_seed, seconds, runs, support, notes = {}, {}, {}, {}, {}
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        base = args.run_dir if args.run_dir is not None else Path(tmp)
        folders = [base / f"{name}-seed{seed}" for seed in args.seeds]
        configs = [resolve(run_config(args, seed)) for seed in args.seeds]
        progress = sys.stderr.isatty()
        if args.together:
            results = ensure_seeds(configs, folders, progress=progress)
        else:
            results = [ensure(config, folder, progress=progress) for config, folder in zip(configs, folders)]
        for seed, folder, result in zip(args.seeds, folders, results):
            per_seed[seed] = {int(k.removeprefix("error_qa")): v for k, v in result.items() if k.startswith("error_qa")}
            seconds[seed] = result["seconds"]
            runs[seed] = {k: result[k] for k in ("accuracy", "best_val", "step", "parameters")}
            runs[seed]["linear_start_ended_at"] = ls_end(folder)
            runs[seed]["val_error"] = last_val_error(folder)
            run = load_run(folder)
            runs[seed]["train_error"] = training_error(run)
            run.task.data()
            notes = {"trained_on_1k_file": run.task.fallbacks}
            if args.model in MEMORY:
                support[seed] = support_attention(run)
            print(
                f"seed {seed}: test accuracy {result['accuracy']:.3f} in {result['seconds']:.1f} s"
                f" (LS ended at step {runs[seed]['linear_start_ended_at']})",
                flush=True,
            )
    summary = summarise(
        per_seed,
        {seed: run["val_error"] for seed, run in runs.items()},
        {seed: run["train_error"] for seed, run in runs.items()},
    )
    text = table(summary, args.setting, args.tasks.strip() == "all")
    print(text)
    if support:
        print(support_table(support))
    if notes.get("trained_on_1k_file"):
        print(f"tasks {notes['trained_on_1k_file']} lack their en-10k training file: trained on the 1k file")
    wall = time.perf_counter() - started
    trained = max(seconds.values()) if args.together else sum(seconds.values())  # together: each seed's is the group's
    print(
        f"training: {trained:.1f} s over {len(seconds)} seed(s){' together' if args.together else ''}; "
        f"wall {wall:.1f} s"
    )
    meta = common.machine(
        argv, device=args.device, cuda=torch.cuda.get_device_name() if torch.cuda.is_available() else None
    )
    record = {
        "benchmark": "babi",
        "date": meta["date"],
        "config": run_config(args, args.seeds[0]) | {"seeds": args.seeds, "together": args.together},
        "per_seed_error": {str(s): {str(n): e for n, e in errors.items()} for s, errors in per_seed.items()},
        "runs": {str(s): r for s, r in runs.items()},
        "support_attention": {str(s): {str(n): v for n, v in t.items()} for s, t in support.items()},
        "notes": notes,
        "summary": {
            **summary,
            "mean_error": {str(n): e for n, e in summary["mean_error"].items()},
            "best_error": {str(n): e for n, e in summary["best_error"].items()},
        },
        "paper": PAPER.get(args.setting),
        "train_seconds": seconds,
        "machine": meta,
    }
    out = common.write_result(record, f"{name}.json", args.out)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
