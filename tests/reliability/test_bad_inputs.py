"""Every bad input to the `attnlab` command: status 2, one line on stderr, no traceback, and the
whole tree around the command (data, configs, runs, the folder --out names) exactly as before.

The corpus is generated here: valid small data folders, configs and runs, each broken in one way.
"""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

from reliability.harness import (
    BABI_STORY,
    BABI_TRAIN,
    FLICKR_TRAIN,
    MNIST_FILES,
    MNIST_TRAIN,
    MULTI30K_TRAIN,
    REPO,
    TINY,
    babi_folder,
    cli,
    copy_run,
    fails_cleanly,
    flickr8k_folder,
    idx_bytes,
    mnist_folder,
    multi30k_folder,
    python,
)

# -- the runner against the real interpreter ----------------------------------------------------

AGREEING = [
    ["train", "copy", "--model", "nope", "--out", "run"],
    ["eval", "no-such-run"],
]


def test_forked_runner_agrees_with_python_m_attnlab(tmp_path: Path) -> None:
    """Same status, stderr and stdout from the forked runner and from `python -m attnlab`."""
    for argv, real in zip(AGREEING, python(AGREEING, tmp_path)):
        forked = cli(argv, tmp_path)
        assert (forked.returncode, forked.stderr, forked.stdout) == (real.returncode, real.stderr, real.stdout)
        real.one_line_error()
    assert not (tmp_path / "run").exists()


def test_a_closed_pipe_leaves_stderr_empty(tmp_path: Path) -> None:
    """`attnlab models | head -1`, and a reader gone before anything is written, print no error."""
    readers = {"head": "head -1", "true": "true"}
    started = [
        subprocess.Popen(f"{sys.executable} -m attnlab models 2>{tmp_path / name} | {reader}", shell=True, cwd=REPO)
        for name, reader in readers.items()
    ]
    for child in started:
        child.wait(timeout=120)
    for name in readers:
        assert (tmp_path / name).read_text() == "", name


# -- bAbI ----------------------------------------------------------------------------------------

BABI_BREAKS: dict[str, bytes] = {
    "empty-file": b"",
    "statements-only": b"1 Mary moved to the bathroom.\n2 John went to the hallway.\n",
    "missing-support": b"1 Mary moved to the bathroom.\n2 Where is Mary? \tbathroom\t7\n",
    "no-line-number": b"Mary moved to the bathroom.\n" + "\n".join(BABI_STORY).encode() + b"\n",
    "bad-utf8": b"1 Mary moved to the \xff\xfe bathroom.\n2 Where is Mary? \tbathroom\t1\n",
}


@pytest.mark.parametrize("name", list(BABI_BREAKS))
def test_babi_bad_train_file(tmp_path: Path, name: str) -> None:
    folder = babi_folder(tmp_path / "data")
    (folder / "qa1_single-supporting-fact_train.txt").write_bytes(BABI_BREAKS[name])
    line = fails_cleanly([*BABI_TRAIN, "--out", "run"], tmp_path, env={"ATTNLAB_DATA": str(tmp_path / "data")})
    assert "qa1_single-supporting-fact_train.txt" in line


def test_babi_valid_folder_trains(tmp_path: Path) -> None:
    """The corpus's unbroken folder is valid: the breaks above are what fails."""
    babi_folder(tmp_path / "data")
    cli([*BABI_TRAIN, "--out", "run"], tmp_path, env={"ATTNLAB_DATA": str(tmp_path / "data")}).ok()


# -- MNIST ---------------------------------------------------------------------------------------

COUNT = 40  # images per file in the valid folder
PIXELS = np.zeros((COUNT, 28, 28), dtype=np.uint8)
MNIST_BREAKS: dict[str, tuple[int, bytes]] = {  # name -> (0: images file, 1: labels file; its bytes)
    "wrong-magic": (0, idx_bytes(PIXELS, magic=0x00000804)),
    "truncated": (0, idx_bytes(PIXELS)[: 16 + 28 * 28 * COUNT // 2]),
    "count-beyond-data": (0, idx_bytes(PIXELS, dims=(COUNT + 7, 28, 28))),
    "count-mismatch": (1, idx_bytes(np.arange(COUNT - 1) % 10)),
    "label-out-of-range": (1, idx_bytes(np.full(COUNT, 12))),
    "empty-file": (0, b""),
}


@pytest.mark.parametrize("name", list(MNIST_BREAKS))
def test_mnist_bad_idx_file(tmp_path: Path, name: str) -> None:
    folder = mnist_folder(tmp_path / "data", COUNT)
    which, data = MNIST_BREAKS[name]
    (folder / MNIST_FILES["train"][which]).write_bytes(data)
    line = fails_cleanly([*MNIST_TRAIN, "--out", "run"], tmp_path, env={"ATTNLAB_DATA": str(tmp_path / "data")})
    assert "ubyte" in line


def test_mnist_valid_folder_trains(tmp_path: Path) -> None:
    mnist_folder(tmp_path / "data", COUNT)
    cli([*MNIST_TRAIN, "--out", "run"], tmp_path, env={"ATTNLAB_DATA": str(tmp_path / "data")}).ok()


# -- Multi30k ------------------------------------------------------------------------------------

PARALLEL_BREAKS: dict[str, tuple[str, bytes]] = {  # name -> (file, its bytes)
    "line-counts-differ": ("train.en", b"a dog runs .\na cat sleeps .\n"),
    "empty-file": ("train.de", b""),
    "bad-utf8": ("train.en", b"a dog \xff runs .\n" * 18),
}


@pytest.mark.parametrize("name", list(PARALLEL_BREAKS))
def test_multi30k_bad_file(tmp_path: Path, name: str) -> None:
    folder = multi30k_folder(tmp_path / "data")
    file, data = PARALLEL_BREAKS[name]
    (folder / file).write_bytes(data)
    line = fails_cleanly([*MULTI30K_TRAIN, "--out", "run"], tmp_path, env={"ATTNLAB_DATA": str(tmp_path / "data")})
    assert "train." in line


def test_multi30k_valid_folder_trains(tmp_path: Path) -> None:
    multi30k_folder(tmp_path / "data")
    cli([*MULTI30K_TRAIN, "--out", "run"], tmp_path, env={"ATTNLAB_DATA": str(tmp_path / "data")}).ok()


# -- YAML configs --------------------------------------------------------------------------------

CONFIGS = {
    "syntax-error": "train: [steps: 3\n",
    "top-level-list": "- train\n- model\n",
    "unknown-section": "trian:\n  steps: 3\n",
    "unknown-key": "train:\n  stepz: 3\n",
    "wrong-type": "train:\n  steps: many\n",
    "python-tag": '!!python/object/apply:os.system ["touch MARKER"]\n',
    "python-tag-in-a-value": 'train:\n  steps: !!python/object/apply:os.system ["touch MARKER"]\n',
}


@pytest.mark.parametrize("name", list(CONFIGS))
def test_bad_config_file(tmp_path: Path, name: str) -> None:
    (tmp_path / "config.yaml").write_text(CONFIGS[name])
    line = fails_cleanly(["train", "copy", *TINY, "--config", "config.yaml", "--out", "run"], tmp_path)
    assert "config.yaml" in line or name in ("unknown-section", "unknown-key", "wrong-type")
    assert not (tmp_path / "MARKER").exists()


# -- run folders and checkpoints -----------------------------------------------------------------


class _OpensAFile:
    """Unpickling this creates the file `path` (what a pickle can do to a loader that trusts it)."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Callable[..., object], tuple[str, str]]:
        return open, (self.path, "w")


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _garbage(path: Path) -> None:
    path.write_bytes(os.urandom(64) + b"\x00" * 1000)


def _pickle(path: Path) -> None:
    torch.save({"weight": _OpensAFile(str(path.parent.parent / "MARKER"))}, path)


def _pickle_protocol(path: Path) -> None:
    path.write_bytes(pickle.dumps(_OpensAFile(str(path.parent.parent / "MARKER"))))


def _resize(path: Path) -> None:
    path.write_text(path.read_text().replace("embed_dim: 8", "embed_dim: 12"))


def _no_kind(path: Path) -> None:
    path.write_text("".join(line + "\n" for line in path.read_text().splitlines() if not line.startswith("kind:")))


RUN_BREAKS = {  # name -> (file, how it is broken, the commands that must refuse it)
    "truncated-weights": ("model.safetensors", _truncate, ("eval", "viz")),
    "garbage-trainer-state": ("trainer.safetensors", _garbage, ("resume",)),
    "pickled-weights": ("model.safetensors", _pickle, ("eval", "viz")),
    "plain-pickle-weights": ("model.safetensors", _pickle_protocol, ("eval",)),
    "config-resized": ("config.yaml", _resize, ("eval", "resume")),
    "config-without-kind": ("config.yaml", _no_kind, ("eval", "viz", "resume")),
}
RUN_CASES = [(name, command) for name, (_, _, commands) in RUN_BREAKS.items() for command in commands]
COMMANDS = {
    "eval": ["eval", "run"],
    "viz": ["viz", "run"],
    "resume": ["train", "--resume", "run", "--train.steps=9", "--no-progress"],
}


@pytest.mark.parametrize(("name", "command"), RUN_CASES, ids=[f"{n}-{c}" for n, c in RUN_CASES])
def test_broken_run_folder(tmp_path: Path, copy_run_dir: Path, name: str, command: str) -> None:
    run = copy_run(copy_run_dir, tmp_path)
    file, breaks, _ = RUN_BREAKS[name]
    breaks(run / file)
    line = fails_cleanly(COMMANDS[command], tmp_path)
    assert "run" in line
    assert not (tmp_path / "MARKER").exists()


@pytest.mark.parametrize("command", list(COMMANDS))
def test_a_folder_that_is_not_a_run(tmp_path: Path, command: str) -> None:
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "notes.txt").write_text("not a run\n")
    fails_cleanly(COMMANDS[command], tmp_path)


def test_the_valid_run_copy_evaluates_and_resumes(tmp_path: Path, copy_run_dir: Path) -> None:
    """The unbroken copy works with every command above, so the breaks are what fail."""
    copy_run(copy_run_dir, tmp_path)
    cli(COMMANDS["eval"], tmp_path).ok()
    cli(COMMANDS["resume"], tmp_path).ok()


# -- Flickr8k ------------------------------------------------------------------------------------


def _caption_of_a_missing_image(folder: Path) -> None:
    with (folder / "captions.txt").open("a") as f:
        f.write("z.jpg,a picture of nothing\n")


def _token_line_without_tab(folder: Path) -> None:
    path = folder / "Flickr8k.token.txt"
    lines = path.read_text().splitlines()
    lines[3] = lines[3].replace("\t", " ")
    path.write_text("".join(line + "\n" for line in lines))


def _empty_split(folder: Path) -> None:
    (folder / "Flickr_8k.devImages.txt").write_text("")


FLICKR_BREAKS = {
    "caption-of-a-missing-image": ("A", _caption_of_a_missing_image, "captions.txt"),
    "token-line-without-tab": ("B", _token_line_without_tab, "Flickr8k.token.txt"),
    "empty-split-list": ("A", _empty_split, "Flickr_8k.devImages.txt"),
}


@pytest.mark.parametrize("name", list(FLICKR_BREAKS))
def test_flickr8k_bad_folder(tmp_path: Path, name: str) -> None:
    layout, breaks, file = FLICKR_BREAKS[name]
    breaks(flickr8k_folder(tmp_path / "data", layout))
    line = fails_cleanly([*FLICKR_TRAIN, "--out", "run"], tmp_path, env={"ATTNLAB_DATA": str(tmp_path / "data")})
    assert file in line


def test_an_unreadable_jpeg(tmp_path: Path, caption_run_dir: Path) -> None:
    run = copy_run(caption_run_dir, tmp_path)
    (tmp_path / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0" + b"not a jpeg" * 20)
    line = fails_cleanly(["caption", str(run), "broken.jpg"], tmp_path)
    assert "broken.jpg" in line
    line = fails_cleanly(["caption", str(run), "broken.jpg", "--draw", "figures"], tmp_path)
    assert "broken.jpg" in line


# -- command-line values -------------------------------------------------------------------------

TRAIN_VALUES = {
    "nan-lr": ["copy", *TINY, "--train.lr=nan"],
    "inf-lr": ["copy", *TINY, "--train.lr=inf"],
    "nan-weight-decay": ["copy", *TINY, "--train.weight_decay=nan"],
    "tpu-device": ["copy", *TINY, "--train.device=tpu"],
    "zero-steps": ["copy", *TINY, "--train.steps=0"],
    "unknown-task": ["nosuchtask", *TINY],
    "unknown-model": ["copy", "--model", "nosuchmodel", "--no-progress"],
}


@pytest.mark.parametrize("name", list(TRAIN_VALUES))
def test_bad_train_value(tmp_path: Path, name: str) -> None:
    fails_cleanly(["train", *TRAIN_VALUES[name], "--out", "run"], tmp_path)
    assert not (tmp_path / "run").exists()


def test_eval_size_zero(tmp_path: Path, copy_run_dir: Path) -> None:
    copy_run(copy_run_dir, tmp_path)
    assert "--size" in fails_cleanly(["eval", "run", "--size", "0"], tmp_path)


def test_translate_an_empty_sentence(tmp_path: Path, translation_run_dir: Path) -> None:
    copy_run(translation_run_dir, tmp_path)
    fails_cleanly(["translate", "run", ""], tmp_path)


COMPARE_TINY = ["--train.steps=2", "--train.eval_size=8", "--train.batch_size=8", "--model.hidden_dim=8"]
UNWRITABLE = {
    "train": ["train", "copy", *TINY, "--train.steps=2", "--out", "/proc/attnlab-x"],
    "train-below": ["train", "copy", *TINY, "--train.steps=2", "--out", "/proc/attnlab-x/run"],
    "viz": ["viz", "run", "--out", "/proc/attnlab-x"],
    "compare": ["compare", "copy", "--models", "lstm", "--seeds", "1", "--out", "/proc/attnlab-x", *COMPARE_TINY],
}


@pytest.mark.parametrize("name", list(UNWRITABLE))
def test_unwritable_output(tmp_path: Path, copy_run_dir: Path, name: str) -> None:
    copy_run(copy_run_dir, tmp_path)
    assert "/proc/attnlab-x" in fails_cleanly(UNWRITABLE[name], tmp_path)


def test_translate_draw_into_an_unwritable_folder(tmp_path: Path, translation_run_dir: Path) -> None:
    copy_run(translation_run_dir, tmp_path)
    assert "/proc/x" in fails_cleanly(["translate", "run", "the dog", "--draw", "/proc/x"], tmp_path)
