"""A run SIGKILLed at any moment and resumed (as often as it takes) ends bit for bit as the run
never interrupted: the same model.safetensors bytes, the same metrics records (timings aside), and
no temporary file left in the folder.

Kill points: before the first checkpoint, in the middle of a checkpoint write (the temporary file
written, not yet renamed), just after a checkpoint, and at seeded random times.
"""

from __future__ import annotations

import json
import os
import random
import signal
import time
from pathlib import Path

import pytest

from reliability.harness import TINY, Result, cli, start

STEPS, EVAL_EVERY = 30, 5
TRAIN = ["train", "copy", *TINY, f"--train.steps={STEPS}", f"--train.eval_every={EVAL_EVERY}", "--out", "run"]
RESUME = ["train", "--resume", "run", "--no-progress"]
TIMINGS = {"seconds", "train_seconds", "compile_seconds"}  # record fields that measure time, not results
WRITES = 1 + 2 * (STEPS // EVAL_EVERY)  # renames in a whole run: config.yaml, then weights and trainer state


def _records(folder: Path) -> list[dict]:
    lines = (folder / "metrics.jsonl").read_text().splitlines()
    return [{k: v for k, v in json.loads(line).items() if k not in TIMINGS} for line in lines if line.strip()]


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, float]:
    """The run trained without interruption, and the seconds it took."""
    root = tmp_path_factory.mktemp("reference")
    started = time.monotonic()
    cli(TRAIN, root).ok()
    return root / "run", time.monotonic() - started


def _kill_on_rename(number: int, after: bool) -> None:
    """In the child: SIGKILL this process at its `number`th rename of a run file over another
    (before the rename, the temporary file written; or just after it)."""
    real = os.replace
    count = [0]

    def replace(src: str | os.PathLike, dst: str | os.PathLike, **kw: object) -> None:
        count[0] += 1
        if count[0] == number and not after:
            os.kill(os.getpid(), signal.SIGKILL)
        real(src, dst, **kw)  # type: ignore[arg-type]
        if count[0] == number and after:
            os.kill(os.getpid(), signal.SIGKILL)

    os.replace = replace  # type: ignore[assignment]


def _kill_before_first_checkpoint() -> None:
    """In the child: SIGKILL this process as it is about to write its first weights."""
    real = os.replace

    def replace(src: str | os.PathLike, dst: str | os.PathLike, **kw: object) -> None:
        if str(dst).endswith(".safetensors"):
            os.kill(os.getpid(), signal.SIGKILL)
        real(src, dst, **kw)  # type: ignore[arg-type]

    os.replace = replace  # type: ignore[assignment]


def _killed(result: Result) -> bool:
    return result.returncode == -signal.SIGKILL


def _finish(root: Path, rng: random.Random | None = None, seconds: float = 0.0) -> None:
    """Resume the run in root/run until it completes (with rng, SIGKILL the first resume at a random time)."""
    for attempt in range(5):
        if not (root / "run" / "config.yaml").is_file():  # killed before the run was recorded: start over
            argv = TRAIN
        else:
            argv = RESUME
        child = start(argv, root)
        if rng is not None and attempt == 0:
            time.sleep(rng.uniform(0, seconds))
            result = child.kill()
        else:
            result = child.wait()
        if result.returncode == 0:
            return
        assert _killed(result), f"{argv}: rc={result.returncode}\n{result.stderr}"
    raise AssertionError("the run did not complete in 5 resumes")


def _same_as_reference(run: Path, reference: Path) -> None:
    assert (run / "model.safetensors").read_bytes() == (reference / "model.safetensors").read_bytes()
    assert _records(run) == _records(reference)
    leftovers = [p.name for p in run.iterdir() if p.name.startswith(".") and p.name.endswith(".tmp")]
    assert not leftovers, leftovers


def test_killed_before_the_first_checkpoint(tmp_path: Path, reference: tuple[Path, float]) -> None:
    """config.yaml but no checkpoint: `--resume` trains from step 0; a fresh `--out` there points at --resume."""
    assert _killed(cli(TRAIN, tmp_path, before=_kill_before_first_checkpoint))
    assert (tmp_path / "run" / "config.yaml").is_file()
    assert not (tmp_path / "run" / "trainer.safetensors").exists()
    assert "--resume" in cli(TRAIN, tmp_path).one_line_error()
    cli(RESUME, tmp_path).ok()
    _same_as_reference(tmp_path / "run", reference[0])


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_killed_in_the_middle_of_a_checkpoint_write(tmp_path: Path, reference: tuple[Path, float], seed: int) -> None:
    number = random.Random(seed).randint(2, WRITES)  # a weights or trainer-state write
    assert _killed(cli(TRAIN, tmp_path, before=lambda: _kill_on_rename(number, after=False)))
    assert any(p.name.endswith(".tmp") for p in (tmp_path / "run").iterdir())  # the kill hit mid-write
    _finish(tmp_path)
    _same_as_reference(tmp_path / "run", reference[0])


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_killed_just_after_a_checkpoint(tmp_path: Path, reference: tuple[Path, float], seed: int) -> None:
    number = 1 + 2 * random.Random(seed).randint(1, STEPS // EVAL_EVERY - 1)  # a trainer-state write
    assert _killed(cli(TRAIN, tmp_path, before=lambda: _kill_on_rename(number, after=True)))
    _finish(tmp_path)
    _same_as_reference(tmp_path / "run", reference[0])


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_killed_at_random_times(tmp_path: Path, reference: tuple[Path, float], seed: int) -> None:
    """SIGKILL the run, then its first resume, each at a random moment of a run's length."""
    rng = random.Random(seed)
    folder, seconds = reference
    child = start(TRAIN, tmp_path)
    time.sleep(rng.uniform(0, seconds))
    first = child.kill()
    assert first.returncode == 0 or _killed(first), first.stderr
    if first.returncode != 0:
        _finish(tmp_path, rng, seconds)
    _same_as_reference(tmp_path / "run", folder)
