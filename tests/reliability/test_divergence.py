"""A run that goes non-finite stops in one line naming the step, and never leaves a non-finite
checkpoint or a non-JSON metrics line; `train.nonfinite=skip` skips such steps and counts them."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from reliability.harness import TINY, TINY_ATTENTION, cli, copy_run

DIVERGING = ["train", "copy", "--model", "transformer", "--train.lr=1e6", "--train.steps=100"]
DIVERGING += ["--train.eval_every=20", "--no-progress", "--out", "run"]
CHECKPOINTS = ("model.safetensors", "trainer.safetensors", "best.safetensors")


def _strict(constant: str) -> float:
    raise ValueError(f"metrics.jsonl holds {constant}, which is not JSON")


def _assert_finite_and_strict(run: Path) -> None:
    """Every tensor of every checkpoint present is finite; metrics.jsonl (if any) is strict JSON."""
    for name in CHECKPOINTS:
        if (run / name).is_file():
            for key, tensor in load_file(run / name).items():
                if tensor.is_floating_point():
                    assert torch.isfinite(tensor).all(), f"{name}: {key} is not finite"
    if (run / "metrics.jsonl").is_file():
        for line in (run / "metrics.jsonl").read_text().splitlines():
            json.loads(line, parse_constant=_strict)


def test_a_diverging_run_stops_in_one_line(tmp_path: Path) -> None:
    line = cli(DIVERGING, tmp_path).one_line_error()
    assert "step " in line and "non-finite" in line, line
    _assert_finite_and_strict(tmp_path / "run")


@pytest.fixture(scope="module")
def good_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("good")
    cli(["train", "copy", *TINY_ATTENTION, "--train.steps=6", "--train.eval_every=3", "--out", "run"], root).ok()
    return root / "run"


def test_resuming_into_divergence_keeps_the_good_weights(tmp_path: Path, good_run: Path) -> None:
    run = copy_run(good_run, tmp_path)
    weights = (run / "model.safetensors").read_bytes()
    argv = ["train", "--resume", "run", "--train.lr=1e6", "--train.steps=60", "--train.eval_every=60"]
    argv.append("--no-progress")
    line = cli(argv, tmp_path).one_line_error()
    assert "non-finite" in line, line
    assert (run / "model.safetensors").read_bytes() == weights
    _assert_finite_and_strict(run)


def _nan_loss_at(steps: set[int] | None) -> None:
    """In the child: the copy task's training loss is NaN at these 1-based training steps (None: all)."""
    from attnlab.tasks import TASKS

    task = TASKS.get("copy")
    real = task.loss
    calls = [0]

    def loss(self: object, logits: torch.Tensor, batch: object) -> torch.Tensor:
        value = real(self, logits, batch)
        if not torch.is_grad_enabled():  # evaluation
            return value
        calls[0] += 1
        return value * math.nan if steps is None or calls[0] in steps else value

    task.loss = loss  # type: ignore[method-assign]


NAN_RUN = ["train", "copy", *TINY, "--train.steps=12", "--train.eval_every=4", "--out", "run"]


def test_a_nan_loss_stops_the_run_at_its_step(tmp_path: Path) -> None:
    line = cli(NAN_RUN, tmp_path, before=lambda: _nan_loss_at({6})).one_line_error()
    assert "step 6" in line and "non-finite" in line, line
    _assert_finite_and_strict(tmp_path / "run")


def test_skip_counts_the_non_finite_steps(tmp_path: Path) -> None:
    cli([*NAN_RUN, "--train.nonfinite=skip"], tmp_path, before=lambda: _nan_loss_at({2, 6})).ok()
    run = tmp_path / "run"
    _assert_finite_and_strict(run)
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    val = [r for r in records if r["split"] == "val"]
    assert all("skipped_steps" in r for r in val), val
    counts = [r["skipped_steps"] for r in val]
    assert counts[-1] == 2 or sum(counts) == 2, counts  # a running total, or a count per evaluation


def test_skip_still_stops_when_every_step_is_non_finite(tmp_path: Path) -> None:
    line = cli([*NAN_RUN, "--train.nonfinite=skip"], tmp_path, before=lambda: _nan_loss_at(None)).one_line_error()
    assert "non-finite" in line, line
    _assert_finite_and_strict(tmp_path / "run")


def test_diverging_with_skip_never_checkpoints_non_finite_weights(tmp_path: Path) -> None:
    argv = ["train", "copy", *TINY_ATTENTION, "--train.lr=1e6", "--train.steps=40", "--train.eval_every=10"]
    result = cli([*argv, "--train.nonfinite=skip", "--out", "run"], tmp_path)
    if result.returncode != 0:
        assert "non-finite" in result.one_line_error()
    _assert_finite_and_strict(tmp_path / "run")
