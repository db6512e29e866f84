"""bAbI per-task test error of a memory family trained through attnlab.train, over several seeds.

    python benchmarks/babi.py --setting generated --tasks 1,2 --steps 300         # seconds, no data
    ATTNLAB_DATA=../shared/data python benchmarks/babi.py --tasks 1 --steps 500
    ATTNLAB_DATA=../shared/data python benchmarks/babi.py --tasks all --steps 20000 --seeds 0 1 2 --device cuda

Trains `--model` (memn2n or kvmemnn, from attnlab.models.memory) on the "babi" task
(attnlab.tasks.babi) once per seed, each run in its own folder, then reads the per-task test error
(`error_qa{N}` of the run's test summary) and prints a table: mean and best error over the seeds
per task, the mean over tasks and the failed tasks (error > 5%), next to the joint-training
figures of MemN2N PE LS RN (Sukhbaatar et al. 2015) in ../shared/REFERENCES.md. Those are
20-task means only (no per-task figures there), so they compare with `--tasks all` alone.
The training loop here has no linear-start phase (LS): `--linear-start` keeps it on for the whole run.

Writes benchmarks/results/babi-{model}-{setting}-{tasks}.json (configuration, per-task errors per
seed, summary, training seconds, machine).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

import attnlab.models.memory  # noqa: F401  (registers memn2n and kvmemnn)
from attnlab.train import resolve, train

ROOT = Path(__file__).resolve().parents[1]
FAIL = 0.05  # a task fails above 5% test error (Weston et al. 2015)
# ../shared/REFERENCES.md, "Memory networks on bAbI": MemN2N PE LS RN, joint training, 20 tasks
PAPER = {
    "en": {"mean_error": 0.124, "failed": 11,
           "source": "Sukhbaatar et al. 2015, 3 hops; via Dehghani et al. 2019 Table 1"},
    "en-10k": {"mean_error": 0.075, "failed": 6, "source": "Graves et al. 2016 (DNC), text"},
}


def run_config(args, seed: int) -> dict:
    """The plain-data run configuration of one seed."""
    model = {"name": args.model, "embed_dim": args.embed_dim, "hops": args.hops}
    if args.model == "memn2n":
        model.update(random_noise=args.random_noise, linear_start=args.linear_start)
    task = {"name": "babi", "tasks": args.tasks, "setting": args.setting, "memory_size": args.memory_size}
    if args.data_dir:
        task["data_dir"] = args.data_dir
    train_cfg = {"steps": args.steps, "batch_size": args.batch_size, "lr": args.lr, "seed": seed,
                 "eval_every": args.eval_every, "eval_size": 10**7, "device": args.device, "warmup_steps": 0}
    return {"task": task, "model": model, "train": train_cfg}


def summarise(per_seed: dict[int, dict[int, float]]) -> dict:
    """Per-task mean and best error over seeds, the mean over tasks and the failed tasks of each."""
    tasks = sorted(next(iter(per_seed.values())))
    mean = {n: statistics.mean(errors[n] for errors in per_seed.values()) for n in tasks}
    best = {n: min(errors[n] for errors in per_seed.values()) for n in tasks}
    seed_means = [statistics.mean(errors.values()) for errors in per_seed.values()]
    return {
        "tasks": tasks,
        "mean_error": mean,
        "best_error": best,
        "mean_over_tasks": statistics.mean(mean.values()),
        "best_seed_mean_over_tasks": min(seed_means),
        "failed_mean": [n for n in tasks if mean[n] > FAIL],
        "failed_best_seed": min(sum(e > FAIL for e in errors.values()) for errors in per_seed.values()),
    }


def table(summary: dict, setting: str, all_tasks: bool) -> str:
    lines = [f"{'task':>6} {'mean err %':>11} {'best err %':>11}"]
    for n in summary["tasks"]:
        flag = "  failed" if summary["mean_error"][n] > FAIL else ""
        lines.append(f"{n:>6} {100 * summary['mean_error'][n]:>11.1f} {100 * summary['best_error'][n]:>11.1f}{flag}")
    mean, best = 100 * summary["mean_over_tasks"], 100 * summary["best_seed_mean_over_tasks"]
    lines.append(f"{'mean':>6} {mean:>11.1f} {best:>11.1f}")
    lines.append(f"failed (> 5%): {len(summary['failed_mean'])} of {len(summary['tasks'])} by mean error, "
                 f"{summary['failed_best_seed']} for the best seed")
    paper = PAPER.get(setting)
    if paper is not None:
        note = "" if all_tasks else " (20-task figures; this run has fewer tasks)"
        lines.append(f"paper, MemN2N PE LS RN joint: mean error {100 * paper['mean_error']:.1f}%, "
                     f"failed {paper['failed']}{note} [{paper['source']}]")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=["memn2n", "kvmemnn"], default="memn2n")
    parser.add_argument("--tasks", default="1", help='comma-separated task numbers, or "all" (joint)')
    parser.add_argument("--setting", choices=["en", "en-10k", "generated"], default="en")
    parser.add_argument("--data-dir", default="", help="folder holding babi/ (default: env ATTNLAB_DATA)")
    parser.add_argument("--steps", type=int, default=2000, help="optimizer steps per seed")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=0.01)
    parser.add_argument("--eval-every", type=int, default=500)
    parser.add_argument("--embed-dim", type=int, default=50)
    parser.add_argument("--hops", type=int, default=3)
    parser.add_argument("--memory-size", type=int, default=50)
    parser.add_argument("--random-noise", type=float, default=0.1, help="memn2n RN rate")
    parser.add_argument("--linear-start", action="store_true", help="memn2n LS for the whole run")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    parser.add_argument("--run-dir", type=Path, default=None, help="keep the runs here (default: a temporary folder)")
    parser.add_argument("--out", type=Path, default=None, help="default: in benchmarks/results")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    name = f"babi-{args.model}-{args.setting}-{args.tasks.replace(',', '-').replace(' ', '')}"
    out = args.out or ROOT / "benchmarks" / "results" / f"{name}.json"
    per_seed, seconds, runs = {}, {}, {}
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        base = args.run_dir if args.run_dir is not None else Path(tmp)
        for seed in args.seeds:
            data = run_config(args, seed)
            result = train(resolve(data), base / f"{name}-seed{seed}", progress=sys.stderr.isatty())
            per_seed[seed] = {int(k.removeprefix("error_qa")): v for k, v in result.items() if k.startswith("error_qa")}
            seconds[seed] = result["seconds"]
            runs[seed] = {k: result[k] for k in ("accuracy", "best_val", "step", "parameters")}
            print(f"seed {seed}: test accuracy {result['accuracy']:.3f} in {result['seconds']:.1f} s", flush=True)
    summary = summarise(per_seed)
    text = table(summary, args.setting, args.tasks.strip() == "all")
    print(text)
    wall = time.perf_counter() - started
    print(f"training: {sum(seconds.values()):.1f} s over {len(seconds)} seed(s); wall {wall:.1f} s")
    record = {
        "benchmark": "babi",
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "config": run_config(args, args.seeds[0]) | {"seeds": args.seeds},
        "per_seed_error": {str(s): {str(n): e for n, e in errors.items()} for s, errors in per_seed.items()},
        "runs": {str(s): r for s, r in runs.items()},
        "summary": {**summary, "mean_error": {str(n): e for n, e in summary["mean_error"].items()},
                    "best_error": {str(n): e for n, e in summary["best_error"].items()}},
        "paper": PAPER.get(args.setting),
        "train_seconds": seconds,
        "machine": {"python": platform.python_version(), "torch": torch.__version__, "platform": platform.platform(),
                    "device": args.device, "cuda": torch.cuda.get_device_name() if torch.cuda.is_available() else None},
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(record, indent=2) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
