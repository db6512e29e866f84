"""The `attnlab` command."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from attnlab import __version__


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="attnlab", description="Build, train and look inside attention models.")
    parser.add_argument("--version", action="version", version=f"attnlab {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    tour = sub.add_parser("tour", help="the main job: a tour on generated data, written to a folder")
    tour.add_argument("--out", type=Path, default=Path("tour"), help="folder for report.html and figures")
    tour.add_argument("--steps", type=int, default=400, help="training steps of the copy task")
    tour.add_argument("--seed", type=int, default=0)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "tour":
        if args.steps < 1:
            print("attnlab tour: --steps must be >= 1", file=sys.stderr)
            return 2
        from attnlab.tour import run_tour

        metrics = run_tour(args.out, steps=args.steps, seed=args.seed)
        copy = metrics["copy"]
        print(
            f"copy accuracy {copy['copy_accuracy']:.1%} after {copy['steps']} steps ({copy['train_seconds']} s); "
            f"report: {args.out / 'report.html'}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
