"""The `attnlab` command.

    attnlab tasks | models
    attnlab train TASK --model NAME [--out DIR] [--config FILE] [--section.key=value ...]
    attnlab train --resume DIR [--train.steps=N]
    attnlab eval DIR [--split test] [--best]
    attnlab compare TASK --models a,b,c --seeds N [--sweep task.distance=8,32] [--out DIR]
                         [--together] [--best-of-seeds]
    attnlab viz DIR [--out DIR] [--best]
    attnlab translate DIR "a sentence" [...] [--beam K] [--draw DIR] [--truncate] [--best]
    attnlab caption DIR IMAGE [...] [--beam K] [--draw DIR] [--best]
    attnlab attend "a sentence" [--out DIR] [--bertviz FILE] [--truncate]
    attnlab tour [--out DIR]
    attnlab serve [RUNS_DIR ...] [--port N] [--host H]

Bad input (an unknown task, model or key, a malformed config, a missing or foreign run folder,
an output folder that cannot be created, an empty sentence or one longer than the model takes)
prints one line naming what was wrong and exits with status 2; nothing in an existing run is
overwritten. The output folders of compare, viz, translate, caption, attend and tour are created
(attnlab.files) before the training, decoding or drawing, and one that a failed command made is
left behind only if something was written into it. Input is never cut silently: a sentence over
the limit is an error, or with --truncate a one-line warning on stderr.
`--data-dir DIR` (on every command that reads data) names the folder holding the real datasets
(babi/, multi30k/, ...), in place of the environment variable ATTNLAB_DATA; it must exist.

When stdout is a pipe that closes early (`attnlab models | head -1`), the command stops quietly,
with nothing on stderr and status 141 (128 + SIGPIPE, as a shell reports a command that a closed
pipe ended).
`--best` (eval, viz, translate, caption) reads the run's weights at its best validation metric
(best.safetensors) in place of the last step's (model.safetensors).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
from datetime import datetime
from pathlib import Path
from typing import Any, NoReturn

from attnlab import __version__
from attnlab.config import parse_overrides, read_yaml
from attnlab.errors import ConfigError, DataError
from attnlab.files import output_dir, writing_into


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # one line, no usage block
        self.exit(2, f"{self.prog}: {message} (see --help)\n")


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="attnlab", description="Build, train, compare and look inside attention models.")
    parser.add_argument("--version", action="version", version=f"attnlab {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    sub.add_parser("tasks", help="list the tasks")
    models = sub.add_parser("models", help="list the model families, or one family's config fields")
    models.add_argument("name", nargs="?", help="a family: list its fields, types, defaults and meanings")

    train = sub.add_parser("train", help="train a model on a task into a run folder")
    train.add_argument("task", nargs="?", help="task name (see `attnlab tasks`)")
    train.add_argument("--model", help="model family (see `attnlab models`)")
    train.add_argument("--out", type=Path, help="run folder (default runs/TASK-MODEL-TIME)")
    train.add_argument("--config", type=Path, help="YAML file with task/model/train sections")
    train.add_argument("--resume", type=Path, metavar="DIR", help="continue the run in DIR")
    train.add_argument("--no-progress", action="store_true", help="no progress bar")

    ev = sub.add_parser("eval", help="evaluate a trained run")
    ev.add_argument("run", type=Path)
    ev.add_argument("--split", choices=["val", "test"], default="test")
    ev.add_argument("--size", type=int, help="examples, >= 1 (default: the run's train.eval_size)")
    ev.add_argument("--examples", type=int, default=0, help="also print this many examples (default 0)")

    cmp = sub.add_parser("compare", help="train several families over seeds and tabulate them")
    cmp.add_argument("task")
    cmp.add_argument("--models", required=True, help="comma-separated families")
    cmp.add_argument("--seeds", type=int, default=3)
    cmp.add_argument("--sweep", help="one setting over values, e.g. task.distance=8,32,128")
    cmp.add_argument("--out", type=Path, help="results folder (default compare/TASK)")
    cmp.add_argument("--config", type=Path, help="YAML file with task/model/train sections")
    cmp.add_argument("--jobs", type=int, default=1, help="runs trained at once (processes)")
    cmp.add_argument(
        "--together",
        action="store_true",
        help="train each family's seeds as one vectorised model (stacked weights, one batched step)",
    )
    cmp.add_argument(
        "--best-of-seeds",
        action="store_true",
        help="report the test metric of the seed with the best validation metric (with the mean beside it)",
    )

    viz = sub.add_parser("viz", help="draw the attention of a trained run on a few examples")
    viz.add_argument("run", type=Path)
    viz.add_argument("--out", type=Path, help="folder for the figures (default RUN/viz)")
    viz.add_argument("--examples", type=int, default=3)

    tr = sub.add_parser("translate", help="translate sentences with a trained translation run")
    tr.add_argument("run", type=Path)
    tr.add_argument("sentences", nargs="+", help="source sentences, one argument each")
    tr.add_argument("--beam", type=int, default=1, help="beam size (1: greedy)")
    tr.add_argument("--draw", type=Path, metavar="DIR", help="draw each sentence's alignment matrix into DIR")
    tr.add_argument(
        "--truncate", action="store_true", help="cut sentences longer than the run's task.max_len (with a warning)"
    )

    cap = sub.add_parser("caption", help="caption image files with a trained captioning run")
    cap.add_argument("run", type=Path)
    cap.add_argument("images", nargs="+", type=Path, help="image files (JPEG, PNG), one argument each")
    cap.add_argument("--beam", type=int, default=1, help="beam size (1: greedy)")
    cap.add_argument("--draw", type=Path, metavar="DIR", help="draw each image once per word, with its attention")

    best = "the weights of the best validation metric, not the last step's"
    for reads_a_run in (ev, viz, tr, cap):
        reads_a_run.add_argument(
            "--best", action="store_const", dest="weights", const="best", default="last", help=best
        )

    tour = sub.add_parser("tour", help="the main job: train the families on generated tasks, write report.html")
    tour.add_argument("--out", type=Path, default=Path("tour"), help="folder for report.html and figures")
    tour.add_argument("--seed", type=int, default=0)
    tour.add_argument("--quick", action="store_true", help="a few steps per run (a smoke test, not results)")

    serve = sub.add_parser("serve", help="a local web page to look inside every run (on 127.0.0.1 by default)")
    serve.add_argument(
        "roots", nargs="*", type=Path, metavar="RUNS_DIR", help="folders to search (default runs/ and tour/)"
    )
    serve.add_argument("--port", type=int, default=8000, help="TCP port (default 8000)")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1; others warn)")

    for command in (train, ev, cmp, viz, tr, cap, tour, serve):
        command.add_argument("--data-dir", type=Path, help="folder of the real datasets (default: env ATTNLAB_DATA)")

    try:
        from attnlab.probes.command import add_attend_parser
    except ImportError:  # pragma: no cover - the probes need the optional pretrained model
        pass
    else:
        add_attend_parser(sub)
    return parser


def _sections(config_file: Path | None, extra: list[str]) -> tuple[dict[str, Any], dict[str, dict[str, str]]]:
    data = read_yaml(config_file) if config_file else {}
    return data, parse_overrides(extra)


def _cmd_list(kind: str, name: str | None = None) -> int:
    import dataclasses

    from attnlab.config import field_comments
    from attnlab.models import MODELS
    from attnlab.tasks import TASKS

    registry = TASKS if kind == "tasks" else MODELS
    if name is None:
        width = max(len(n) for n in registry.names())
        for entry in registry.names():
            print(f"{entry:<{width}}  {registry.summary(entry)}")
        return 0

    def shown(value: object) -> str:  # as typed after --model.FIELD=
        if isinstance(value, bool):
            return str(value).lower()
        if isinstance(value, tuple):
            return ",".join(map(str, value))
        return "none" if value is None else str(value)

    config = MODELS.build_config(name, where="model")
    comments = field_comments(type(config))
    rows = [
        (
            f.name,
            f.type if isinstance(f.type, str) else getattr(f.type, "__name__", str(f.type)),
            shown(getattr(config, f.name)),
            comments.get(f.name, ""),
        )
        for f in dataclasses.fields(config)
    ]
    print(f"{name}: {MODELS.summary(name)}")
    print(f"{type(config).__name__} fields, set with --model.FIELD=VALUE:")
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    for row in rows:
        print("  " + "  ".join(f"{cell:<{w}}" for cell, w in zip(row, widths)) + f"  {row[3]}".rstrip())
    return 0


def _cmd_train(args: argparse.Namespace, extra: list[str]) -> int:
    from attnlab.train import checkpoint, resolve, train

    data, overrides = _sections(args.config, extra)
    if args.resume:
        if args.task or args.model or args.config or args.out:
            raise ConfigError("--resume DIR takes the run's own config; give only train.* overrides")
        if set(overrides) - {"train"}:
            raise ConfigError("--resume DIR may change train.* settings only")
        config = resolve(checkpoint.load_config(args.resume), overrides)
        folder = args.resume
    else:
        data = {
            **data,
            "task": {**(data.get("task") or {}), **({"name": args.task} if args.task else {})},
            "model": {**(data.get("model") or {}), **({"name": args.model} if args.model else {})},
        }
        if not data["task"].get("name"):
            raise ConfigError("give a task: attnlab train TASK --model NAME (see `attnlab tasks`)")
        if not data["model"].get("name"):
            raise ConfigError("give a model: --model NAME (see `attnlab models`)")
        config = resolve(data, overrides)
        if args.out is None and int(os.environ.get("WORLD_SIZE", "1")) > 1:
            raise ConfigError("give --out DIR under torchrun, so that every process writes to the same run")
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
        folder = args.out or Path("runs") / f"{config.task}-{config.model}-{stamp}"
    summary = train(config, folder, resume=bool(args.resume), progress=not args.no_progress)
    shown = {k: round(v, 4) if isinstance(v, float) else v for k, v in summary.items() if k != "split"}
    if os.environ.get("RANK", "0") == "0":
        print(f"{folder}: test {json.dumps(shown)}")
    return 0


def _cmd_eval(args: argparse.Namespace) -> int:
    from attnlab.train import evaluate, load_run

    if args.size is not None and args.size < 1:
        raise ConfigError(f"--size must be >= 1, got {args.size}")
    if args.examples < 0:
        raise ConfigError(f"--examples must be >= 0, got {args.examples}")
    run = load_run(args.run, args.weights)
    size = run.config.train.eval_size if args.size is None else args.size
    data = run.task.eval_set(size, args.split)
    metrics = evaluate(run.model, run.task, data)
    print(json.dumps({"run": str(args.run), "split": args.split, "examples": len(data), **metrics}))
    if args.examples:
        import torch

        with torch.no_grad():
            logits = run.model(data.inputs[: args.examples])
        for i in range(min(args.examples, len(data))):
            print(run.task.render(data, i, logits) + "\n")
    return 0


def _cmd_compare(args: argparse.Namespace, extra: list[str]) -> int:
    from attnlab.tasks import TASKS
    from attnlab.train import compare
    from attnlab.viz.curves import draw_results

    data, overrides = _sections(args.config, extra)
    for section, values in data.items():
        if section in ("task", "model"):
            values = {k: v for k, v in (values or {}).items() if k != "name"}
        overrides[section] = {**(values or {}), **overrides.get(section, {})}
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    if not models:
        raise ConfigError("--models needs at least one family")
    if args.jobs < 1:
        raise ConfigError(f"--jobs must be >= 1, got {args.jobs}")
    sweep = compare.Sweep.parse(args.sweep) if args.sweep else None
    jobs = compare.plan(args.task, models, args.seeds, overrides, sweep)
    out = output_dir(args.out or Path("compare") / args.task, "--out")
    rows = compare.run_all(jobs, out, workers=args.jobs, together=args.together)
    task = TASKS.get(args.task)
    metric = task.metric
    summary = compare.summarise(rows, metric, task.maximize)
    command = "attnlab " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    best_of = args.best_of_seeds
    files = compare.write_results(
        out, rows, summary, task=args.task, metric=metric, sweep=sweep, command=command, best_of=best_of
    )
    files["plot.png"] = draw_results(out)
    print(compare.markdown_table(summary, metric, sweep, best_of=best_of))
    print("wrote " + ", ".join(str(p) for p in files.values()))
    return 0


def _cmd_viz(args: argparse.Namespace) -> int:
    from attnlab.train import load_run
    from attnlab.viz.runs import draw_run

    if args.examples < 1:
        raise ConfigError(f"--examples must be >= 1, got {args.examples}")
    run = load_run(args.run, args.weights)
    with writing_into(args.out or args.run / "viz", "--out") as out:
        paths = draw_run(run, out, examples=args.examples)
    print("wrote " + ", ".join(str(p) for p in paths))
    return 0


def _decoding_run(args: argparse.Namespace, task_type: type, what: str, task_name: str) -> Any:
    """The run in args.run, checked to be of task_type, after checking --beam (translate, caption)."""
    from attnlab.train import load_run

    if args.beam < 1:
        raise ConfigError(f"--beam must be >= 1, got {args.beam}")
    run = load_run(args.run, args.weights)
    if not isinstance(run.task, task_type):
        raise ConfigError(f"{args.run}: a run of task {run.config.task!r}, not a {what} run (task {task_name})")
    return run


def _cmd_translate(args: argparse.Namespace) -> int:
    from attnlab.tasks.translation import TranslationTask
    from attnlab.tasks.translation_eval import alignment, check_sources, translate

    run = _decoding_run(args, TranslationTask, "translation", "translate")
    for note in check_sources(run.task, args.sentences, truncate=args.truncate):
        print(f"attnlab translate: warning: {note}", file=sys.stderr)
    if args.draw is None:
        for line in translate(run.task, run.model, args.sentences, beam_size=args.beam, truncate=True):
            print(line)
        return 0
    from attnlab.viz.translation import draw_alignment

    with writing_into(args.draw, "--draw") as folder:
        for index, sentence in enumerate(args.sentences):
            found = alignment(run.task, run.model, sentence, beam_size=args.beam, truncate=True)
            title = f"{run.config.model}: {sentence}"
            path = draw_alignment(found, folder / f"alignment-{index}.png", title=title)
            print(f"{found.translation}\t(alignment: {path})")
    return 0


def _cmd_caption(args: argparse.Namespace) -> int:
    from attnlab.tasks.caption_eval import caption_files, looked
    from attnlab.tasks.captioning import CaptionTask

    run = _decoding_run(args, CaptionTask, "captioning", "caption")
    if args.draw is None:
        for path, line in zip(args.images, caption_files(run.task, run.model, args.images, beam_size=args.beam)):
            print(f"{path}\t{line}")
        return 0
    from attnlab.viz.captioning import draw_caption

    with writing_into(args.draw, "--draw") as folder:
        for index, (path, seen) in enumerate(
            zip(args.images, looked(run.task, run.model, args.images, beam_size=args.beam))
        ):
            figure = folder / f"caption-{index}.png"
            title = f"{run.config.model}: {path.name}"
            draw_caption(seen.image, seen.words, seen.alphas, run.task.grid, figure, picks=seen.picks, title=title)
            print(f"{path}\t{' '.join(seen.words[:-1])}\t(attention: {figure})")
    return 0


def _cmd_tour(args: argparse.Namespace) -> int:
    from attnlab.tour import run_tour

    report = run_tour(output_dir(args.out, "--out"), seed=args.seed, quick=args.quick)
    print(f"report: {report}")
    return 0


def _cmd_serve(args: argparse.Namespace) -> int:
    from attnlab.explorer import default_roots, serve

    if not 1 <= args.port <= 65535:
        raise ConfigError(f"--port must be in [1, 65535], got {args.port}")
    if not args.host.strip():
        raise ConfigError("--host must not be empty")
    roots = list(args.roots) or default_roots()
    if not roots:
        raise ConfigError("no runs folder: give RUNS_DIR (the default, runs/ or tour/, does not exist here)")
    for root in roots:
        if not root.is_dir():
            raise ConfigError(f"{root}: no such runs folder")
    serve(roots, host=args.host, port=args.port)
    return 0


def _run(args: argparse.Namespace, extra: list[str]) -> int:
    """The chosen command's exit status; bad input raises ConfigError or DataError."""
    if getattr(args, "data_dir", None) is not None:
        if not args.data_dir.is_dir():
            why = "not a folder" if args.data_dir.exists() else "no such folder"
            raise ConfigError(f"--data-dir {args.data_dir}: {why}")
        os.environ["ATTNLAB_DATA"] = str(args.data_dir)
    if args.command in ("tasks", "models"):
        return _cmd_list(args.command, getattr(args, "name", None))
    if args.command == "train":
        return _cmd_train(args, extra)
    if args.command == "compare":
        return _cmd_compare(args, extra)
    if args.command == "eval":
        return _cmd_eval(args)
    if args.command == "viz":
        return _cmd_viz(args)
    if args.command == "translate":
        return _cmd_translate(args)
    if args.command == "caption":
        return _cmd_caption(args)
    if args.command == "serve":
        return _cmd_serve(args)
    if args.command == "attend":
        from attnlab.probes.command import run_attend

        return run_attend(args)
    return _cmd_tour(args)


def _silence_stdout() -> None:
    """Point stdout's file descriptor at os.devnull, so that the flush at exit cannot fail again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
    except OSError:
        return
    try:
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):  # a stdout without a descriptor (captured in a test): nothing to flush
        pass
    finally:
        os.close(devnull)


def main(argv: list[str] | None = None) -> int:
    """Run `attnlab` with argv (default sys.argv[1:]); returns the exit status (0, 2 bad input, 141 pipe)."""
    parser = _parser()
    try:
        try:
            args, extra = parser.parse_known_args(argv)
            if extra and args.command not in ("train", "compare"):
                parser.error(f"unrecognized arguments: {' '.join(extra)}")
        except SystemExit as done:  # --help, --version, or a usage error already printed in one line
            return int(done.code or 0)
        return _dispatch(args, extra)
    except BrokenPipeError:  # the reader of stdout has gone (`attnlab models | head -1`): stop quietly
        _silence_stdout()
        return 141


def _dispatch(args: argparse.Namespace, extra: list[str]) -> int:
    """_run, with bad input and Ctrl-C turned into one line on stderr; stdout flushed before returning."""
    try:
        code = _run(args, extra)
        sys.stdout.flush()  # a closed pipe shows here at the latest, not at exit
        return code
    except (ConfigError, DataError) as err:
        print(f"attnlab {args.command}: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"attnlab {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
