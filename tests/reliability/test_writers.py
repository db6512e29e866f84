"""One writer per run folder: a second `attnlab train` on a folder being trained fails in one line
naming the first's pid and changes nothing; the lock dies with its process (a SIGKILL included)."""

from __future__ import annotations

import json
import time
from pathlib import Path

from reliability.harness import TINY, Child, cli, start

LONG = ["train", "copy", *TINY, "--train.steps=400", "--train.eval_every=20", "--out", "run"]
SHORT = ["train", "copy", *TINY, "--train.steps=6", "--train.eval_every=3", "--out", "run"]


def _wait_for(path: Path, child: Child, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert child.alive(), f"the first run ended before {path.name} appeared"
        assert time.monotonic() < deadline, f"no {path} after {timeout} s"
        time.sleep(0.01)


def test_two_trains_on_one_folder(tmp_path: Path) -> None:
    first = start(LONG, tmp_path)
    _wait_for(tmp_path / "run" / "config.yaml", first)
    line = cli(SHORT, tmp_path).one_line_error()
    assert str(first.pid) in line, line
    assert first.wait().returncode == 0
    config = (tmp_path / "run" / "config.yaml").read_text()
    assert "steps: 400" in config and "eval_every: 20" in config
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    val = [r["step"] for r in records if r["split"] == "val"]
    assert val == list(range(20, 401, 20))
    assert [r["split"] for r in records].count("test") == 1


def test_resume_while_training_then_after_a_kill(tmp_path: Path) -> None:
    first = start(LONG, tmp_path)
    _wait_for(tmp_path / "run" / "trainer.safetensors", first)
    config = (tmp_path / "run" / "config.yaml").read_bytes()
    line = cli(["train", "--resume", "run", "--no-progress"], tmp_path).one_line_error()
    assert str(first.pid) in line, line
    assert (tmp_path / "run" / "config.yaml").read_bytes() == config
    assert first.alive()
    first.kill()  # its lock must go with it
    reached = max(json.loads(line)["step"] for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines())
    steps = reached + 20  # fewer steps than the run has trained would be refused
    cli(["train", "--resume", "run", f"--train.steps={steps}", "--no-progress"], tmp_path).ok()
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert records[-1]["split"] == "test" and records[-1]["step"] == steps
