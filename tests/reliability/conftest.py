"""Runs the reliability tests share: each trained once per test process, then copied by the tests
that need a folder of their own (a test that breaks a run breaks its copy)."""

from __future__ import annotations

from pathlib import Path

import pytest

from reliability.harness import TINY_ATTENTION, cli


@pytest.fixture(scope="session")
def copy_run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished tiny run of the copy task (transformer, 6 steps, checkpoints at 3 and 6)."""
    root = tmp_path_factory.mktemp("copy-run")
    cli(["train", "copy", *TINY_ATTENTION, "--train.steps=6", "--train.eval_every=3", "--out", "run"], root).ok()
    return root / "run"


@pytest.fixture(scope="session")
def translation_run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished tiny translation run on the generated language pair (bahdanau, 2 steps)."""
    root = tmp_path_factory.mktemp("translation-run")
    argv = ["train", "translate", "--model", "bahdanau", "--task.toy_pairs=40", "--model.embed_dim=8"]
    argv += ["--model.hidden_dim=8", "--train.steps=2", "--train.eval_every=2", "--train.eval_size=4"]
    argv += ["--train.batch_size=4", "--no-progress", "--out", "run"]
    cli(argv, root).ok()
    return root / "run"


@pytest.fixture(scope="session")
def caption_run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished tiny captioning run on generated digit scenes (show_attend_tell, 2 steps)."""
    root = tmp_path_factory.mktemp("caption-run")
    argv = ["train", "caption", "--model", "show_attend_tell", "--task.scenes=8", "--model.embed_dim=8"]
    argv += ["--model.hidden_dim=8", "--model.attn_dim=8", "--train.steps=2", "--train.eval_every=2"]
    argv += ["--train.eval_size=2", "--train.batch_size=2", "--no-progress", "--out", "run"]
    cli(argv, root).ok()
    return root / "run"
