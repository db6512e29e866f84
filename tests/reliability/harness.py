"""The reliability suite's runner and the builders of its corpora of valid and broken inputs.

`cli(argv, cwd=...)` runs the `attnlab` command as the console script does, in a child process
forked from the test process: attnlab and torch are imported once here, so each case costs a fork
instead of a fresh interpreter (about 3 s of imports). The child sets its working folder and
environment, points fd 1 and 2 at files, calls `attnlab.cli.main(argv)` and exits with its status:
an uncaught exception prints its traceback on stderr and exits 1, as the interpreter does, and a
SystemExit's code is honoured. `python(...)` runs the real `python -m attnlab` for the few cases
that check the runner against the real thing.

The builders write small valid data folders (bAbI, MNIST IDX, Multi30k, Flickr8k) that the tests
then break one file at a time; `snapshot(root)` records every path, size and content hash under a
folder so that a failing command can be shown to have created or changed nothing.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import os
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

import attnlab.cli

REPO = Path(__file__).resolve().parents[2]
TIMEOUT = 120.0  # seconds a forked command may run before the runner kills it

# A tiny run of a generated task: a few steps of a small LSTM (about a second in a forked child).
TINY = [
    "--model",
    "lstm",
    "--task.length=4",
    "--task.symbols=4",
    "--model.embed_dim=8",
    "--model.hidden_dim=16",
    "--model.num_layers=1",
    "--train.batch_size=8",
    "--train.eval_size=8",
    "--train.path=eager",
    "--no-progress",
]
# The same with a small transformer: a run whose attention `attnlab viz` can draw.
TINY_ATTENTION = [
    "--model",
    "transformer",
    "--task.length=4",
    "--task.symbols=4",
    "--model.embed_dim=8",
    "--model.num_heads=2",
    "--model.num_layers=1",
    "--model.ff_dim=16",
    "--train.batch_size=8",
    "--train.eval_size=8",
    "--train.path=eager",
    "--no-progress",
]


@dataclass
class Result:
    """What a command left: its exit status and its two output streams."""

    returncode: int
    stdout: str
    stderr: str

    def one_line_error(self) -> str:
        """Assert the command failed as bad input (status 2, exactly one non-empty stderr line, no
        traceback); the line."""
        shown = f"rc={self.returncode}\nstdout:\n{self.stdout}\nstderr:\n{self.stderr}"
        assert self.returncode == 2, shown
        assert "Traceback" not in self.stdout + self.stderr, shown
        lines = self.stderr.splitlines()
        assert len(lines) == 1 and lines[0].strip(), shown
        assert self.stderr.endswith("\n"), shown
        return lines[0]

    def ok(self) -> Result:
        """Assert the command succeeded; self."""
        assert self.returncode == 0, f"rc={self.returncode}\nstdout:\n{self.stdout}\nstderr:\n{self.stderr}"
        return self


def _child(argv: list[str], cwd: Path, env: dict[str, str], out: Path, err: Path, before: Callable[[], None] | None):
    """The forked child: never returns."""
    code = 1
    try:
        os.chdir(cwd)
        os.environ.clear()
        os.environ.update(env)
        for fd, path in ((1, out), (2, err)):
            target = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            os.dup2(target, fd)
            os.close(target)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.close(null)
        sys.stdin = open(0, closefd=False)  # noqa: SIM115 (lives until os._exit)
        sys.stdout = open(1, "w", closefd=False)  # noqa: SIM115
        sys.stderr = open(2, "w", closefd=False)  # noqa: SIM115
        signal.signal(signal.SIGPIPE, signal.SIG_IGN)  # as the interpreter sets it
        if before is not None:
            before()
        try:
            status = attnlab.cli.main(argv)
        except SystemExit as done:
            status = done.code
        if status is None:
            code = 0
        elif isinstance(status, int):
            code = status
        else:
            print(status, file=sys.stderr)
            code = 1
    except BaseException:
        traceback.print_exc()
        code = 1
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code & 0xFF)


def warm() -> None:
    """Import what a training command imports lazily, once in this process (forked children inherit it)."""
    global _warm
    if _warm:
        return
    import attnlab.viz.runs  # matplotlib: the slowest import of viz and --draw
    import attnlab.viz.translation

    with tempfile.TemporaryDirectory() as folder, open(os.devnull, "w") as null:
        saved = sys.stdout, sys.stderr
        sys.stdout = sys.stderr = null
        try:
            attnlab.cli.main(["train", "copy", *TINY, "--train.steps=1", "--out", str(Path(folder) / "run")])
        finally:
            sys.stdout, sys.stderr = saved
    _warm = True


_warm = False


def start(
    argv: list[str],
    cwd: Path,
    *,
    env: dict[str, str] | None = None,
    before: Callable[[], None] | None = None,
) -> Child:
    """Fork a child that runs `attnlab argv` in cwd (env: variables set on top of ours); its handle."""
    logs = Path(tempfile.mkdtemp(prefix="attnlab-cli-"))  # outside every tree a test snapshots
    out, err = logs / "stdout", logs / "stderr"
    warm()
    environment = {**os.environ, **(env or {})}
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:
        _child(argv, Path(cwd), environment, out, err, before)
    return Child(pid, out, err)


@dataclass
class Child:
    """A forked command; `wait()` gives its Result."""

    pid: int
    out: Path
    err: Path

    def wait(self, timeout: float = TIMEOUT) -> Result:
        deadline = time.monotonic() + timeout
        while True:
            done, status = os.waitpid(self.pid, os.WNOHANG)
            if done:
                break
            if time.monotonic() > deadline:
                os.kill(self.pid, signal.SIGKILL)
                os.waitpid(self.pid, 0)
                raise AssertionError(f"attnlab (pid {self.pid}) ran past {timeout} s")
            time.sleep(0.01)
        code = os.waitstatus_to_exitcode(status)
        result = Result(code, self.out.read_text(errors="replace"), self.err.read_text(errors="replace"))
        shutil.rmtree(self.out.parent, ignore_errors=True)
        return result

    def alive(self) -> bool:
        return os.waitpid(self.pid, os.WNOHANG) == (0, 0)

    def kill(self) -> Result:
        """SIGKILL the child (if still running) and reap it."""
        with contextlib.suppress(ProcessLookupError):  # it ended on its own
            os.kill(self.pid, signal.SIGKILL)
        return self.wait()


def cli(
    argv: list[str],
    cwd: Path,
    *,
    env: dict[str, str] | None = None,
    before: Callable[[], None] | None = None,
    timeout: float = TIMEOUT,
) -> Result:
    """Run `attnlab argv` in a forked child and wait for it."""
    return start(argv, cwd, env=env, before=before).wait(timeout)


def python(commands: list[list[str]], cwd: Path) -> list[Result]:
    """Run the real `python -m attnlab argv` for each argv, in fresh interpreters started at once."""
    started = [
        subprocess.Popen(
            [sys.executable, "-m", "attnlab", *argv],
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for argv in commands
    ]
    results = []
    for child in started:
        out, err = child.communicate(timeout=TIMEOUT)
        results.append(Result(child.returncode, out, err))
    return results


# -- snapshots -----------------------------------------------------------------------------------


def snapshot(root: Path) -> dict[str, tuple[str, int, str]]:
    """Every path under root: (kind, size, sha256) for files, ("dir", 0, "") for folders."""
    found: dict[str, tuple[str, int, str]] = {}
    for path in sorted(Path(root).rglob("*")):
        name = str(path.relative_to(root))
        if path.is_symlink():
            found[name] = ("link", 0, os.readlink(path))
        elif path.is_dir():
            found[name] = ("dir", 0, "")
        else:
            data = path.read_bytes()
            found[name] = ("file", len(data), hashlib.sha256(data).hexdigest())
    return found


def snapshot_diff(before: dict, after: dict) -> list[str]:
    """Readable differences between two snapshots (empty when equal)."""
    changes = [f"created {p}" for p in sorted(set(after) - set(before))]
    changes += [f"removed {p}" for p in sorted(set(before) - set(after))]
    changes += [f"changed {p}" for p in sorted(set(before) & set(after)) if before[p] != after[p]]
    return changes


def fails_cleanly(
    argv: list[str], root: Path, cwd: Path | None = None, *, env: dict[str, str] | None = None, **kw
) -> str:
    """Run `attnlab argv`; assert one-line status-2 failure that leaves root's whole tree as it was;
    the error line. cwd defaults to root."""
    before = snapshot(root)
    line = cli(argv, cwd or root, env=env, **kw).one_line_error()
    changes = snapshot_diff(before, snapshot(root))
    assert not changes, f"{' '.join(argv)} failed ({line}) but {changes}"
    return line


def copy_run(run: Path, into: Path) -> Path:
    """A copy of the run folder at into/run; its path."""
    return Path(shutil.copytree(run, into / "run"))


# -- bAbI ----------------------------------------------------------------------------------------

BABI_STORY = [
    "1 Mary moved to the bathroom.",
    "2 John went to the hallway.",
    "3 Where is Mary? \tbathroom\t1",
    "4 Daniel went back to the hallway.",
    "5 Sandra moved to the garden.",
    "6 Where is Daniel? \thallway\t4",
]


def babi_folder(root: Path) -> Path:
    """root/babi/tasks_1-20_v1-2/en/ with valid qa1 train and test files; the en folder."""
    folder = root / "babi" / "tasks_1-20_v1-2" / "en"
    folder.mkdir(parents=True)
    for split in ("train", "test"):
        (folder / f"qa1_single-supporting-fact_{split}.txt").write_text("\n".join(BABI_STORY * 6) + "\n")
    return folder


BABI_TRAIN = ["train", "babi", "--task.setting=en", "--task.tasks=1", "--model", "memn2n", "--no-progress"]
BABI_TRAIN += ["--train.steps=2", "--train.eval_every=1", "--train.eval_size=4", "--train.batch_size=4"]


# -- MNIST ---------------------------------------------------------------------------------------

MNIST_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


def idx_bytes(array: np.ndarray, magic: int | None = None, dims: tuple[int, ...] | None = None) -> bytes:
    """An IDX file of uint8 values: magic (default 0x0800 + ndim), the dims (default the array's), data."""
    dims = array.shape if dims is None else dims
    magic = 0x0800 + len(dims) if magic is None else magic
    return struct.pack(">I", magic) + struct.pack(f">{len(dims)}I", *dims) + array.astype(np.uint8).tobytes()


def mnist_folder(root: Path, count: int = 40) -> Path:
    """root/mnist/ with the four IDX files of `count` random digits each; the folder."""
    folder = root / "mnist"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for images, labels in MNIST_FILES.values():
        (folder / images).write_bytes(idx_bytes(rng.integers(0, 256, (count, 28, 28))))
        (folder / labels).write_bytes(idx_bytes(np.arange(count) % 10))
    return folder


MNIST_TRAIN = ["train", "digits", "--task.source=mnist", "--task.val_size=4", "--model", "image_mlp"]
MNIST_TRAIN += ["--train.steps=2", "--train.eval_every=1", "--train.eval_size=4", "--train.batch_size=4"]
MNIST_TRAIN += ["--no-progress"]


# -- Multi30k ------------------------------------------------------------------------------------

PAIRS = [
    ("ein hund läuft .", "a dog runs ."),
    ("eine katze schläft .", "a cat sleeps ."),
    ("zwei männer spielen .", "two men play ."),
    ("ein kind lacht .", "a child laughs ."),
    ("eine frau singt .", "a woman sings ."),
    ("ein mann liest .", "a man reads ."),
]


def multi30k_folder(root: Path) -> Path:
    """root/multi30k/ with train, val and test2016 .de/.en files; the folder."""
    folder = root / "multi30k"
    folder.mkdir(parents=True)
    for split in ("train", "val", "test2016"):
        (folder / f"{split}.de").write_text("".join(f"{de}\n" for de, _ in PAIRS * 3))
        (folder / f"{split}.en").write_text("".join(f"{en}\n" for _, en in PAIRS * 3))
    return folder


MULTI30K_TRAIN = ["train", "translate", "--task.corpus=multi30k", "--task.vocab_size=40", "--model", "seq2seq"]
MULTI30K_TRAIN += ["--train.steps=2", "--train.eval_every=1", "--train.eval_size=4", "--train.batch_size=4"]
MULTI30K_TRAIN += ["--no-progress"]


# -- Flickr8k ------------------------------------------------------------------------------------

FLICKR_SPLITS = {"train": ["a.jpg", "b.jpg"], "dev": ["c.jpg"], "test": ["d.jpg"]}


def flickr8k_folder(root: Path, layout: str = "A") -> Path:
    """root/flickr8k/ in layout A (captions.txt, Images/) or B (Flickr8k.token.txt,
    Flicker8k_Dataset/), with the three split lists; the folder."""
    folder = root / "flickr8k"
    images = folder / ("Images" if layout == "A" else "Flicker8k_Dataset")
    images.mkdir(parents=True)
    names = [name for group in FLICKR_SPLITS.values() for name in group]
    for i, name in enumerate(names):
        Image.fromarray(np.full((8, 8, 3), 50 * i, dtype=np.uint8)).save(images / name)
    captions = [(name, f"a picture number {n} of {name[0]}") for name in names for n in range(5)]
    if layout == "A":
        with (folder / "captions.txt").open("w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["image", "caption"])
            writer.writerows(captions)
    else:
        (folder / "Flickr8k.token.txt").write_text(
            "".join(f"{name}#{n % 5}\t{text}\n" for n, (name, text) in enumerate(captions))
        )
    for split, group in FLICKR_SPLITS.items():
        (folder / f"Flickr_8k.{split}Images.txt").write_text("".join(f"{n}\n" for n in group))
    return folder


FLICKR_TRAIN = ["train", "caption", "--task.source=flickr8k", "--task.min_count=1", "--model", "show_attend_tell"]
FLICKR_TRAIN += ["--train.steps=2", "--train.eval_every=1", "--train.eval_size=1", "--train.batch_size=2"]
FLICKR_TRAIN += ["--no-progress"]
