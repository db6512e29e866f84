"""Run directories: the one place that writes and reads configs, metrics, weights and trainer state.

A run directory holds
    config.yaml        what was trained: task, model and training configs (plain data)
    metrics.jsonl      one JSON object per evaluation, appended as training goes
    model.safetensors  the model's weights
    best.safetensors   the model's weights at its best validation metric so far
    checkpoints/step-N.safetensors  the weights at step N, for the last train.keep_checkpoints
                       evaluations (none by default), to average (`average_checkpoints`)
    trainer.safetensors  everything a resumed run needs, in one file: the weights again, the
                       optimizer's tensors, the RNG states, and (as JSON in its metadata) the
                       step, the best metric and the optimizer's hyperparameters
Every file is written to a temporary name in the same folder and renamed over the old one, so a
run killed at any moment keeps its last complete checkpoint; keeping the trainer state in one
file makes each checkpoint a single atomic rename (the trainer state is written last: it is the
checkpoint). A temporary file left by a kill is removed when the run is next opened for writing
(`clean_temporaries`). Nothing is ever unpickled: tensors come from safetensors, everything else
from YAML or JSON, and metrics.jsonl is strict JSON (a non-finite number is written as null).

A process that writes a run folder holds `lock(folder)`, an OS lock on the folder itself (flock),
which the OS releases when the process ends, however it ends; a second writer gets a RunError
naming the holder's pid.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import math
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_model, save_file, save_model
from torch import nn

from attnlab.config import dump_yaml, read_yaml
from attnlab.errors import ConfigError, RunError

RUN_KIND = "attnlab-run"  # the marker in config.yaml that says a folder is a run
CONFIG, METRICS, WEIGHTS, TRAINER = "config.yaml", "metrics.jsonl", "model.safetensors", "trainer.safetensors"
BEST = "best.safetensors"
KEPT = "checkpoints"  # the subfolder of kept checkpoints: step-0001200.safetensors, ...


_UMASK = os.umask(0)
os.umask(_UMASK)


def atomic_write(path: Path, write: Callable[[Path], object]) -> None:
    """Call write(tmp_path), then rename the temporary file over path."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(Path(tmp))
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600 files; give the usual permissions
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def clean_temporaries(folder: Path) -> list[Path]:
    """Remove the temporary files `atomic_write` leaves behind when killed mid-write; the removed paths.

    Call it only while holding the folder's lock: a live writer's temporary file looks the same.
    """
    stale = sorted(p for where in ("", KEPT) for p in (Path(folder) / where).glob(".*.tmp") if p.is_file())
    for path in stale:
        path.unlink(missing_ok=True)
    return stale


def _lock_holder(folder: Path) -> int | None:
    """The pid holding an flock on folder, from /proc/locks (Linux); None where it cannot be told."""
    try:
        st = os.stat(folder)
        table = Path("/proc/locks").read_text()
    except OSError:
        return None
    device = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}"
    for line in table.splitlines():
        fields = line.split()  # "1: FLOCK ADVISORY WRITE pid maj:min:inode start end"
        if len(fields) >= 6 and fields[1] == "FLOCK" and fields[5] == device and fields[4].isdigit():
            return int(fields[4])
    return None


@contextlib.contextmanager
def lock(folder: Path) -> Iterator[None]:
    """Hold an exclusive OS lock on the run folder (which must exist) while the block runs.

    Raises:
        RunError: another process holds it (naming its pid where the OS tells it).
    """
    folder = Path(folder)
    fd = os.open(folder, os.O_RDONLY)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as err:
            if err.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                raise
            pid = _lock_holder(folder)
            holder = f"process {pid}" if pid is not None else "another process"
            raise RunError(f"{folder}: in use: attnlab {holder} is writing this run; wait for it or stop it") from None
        yield
    finally:
        os.close(fd)  # releases the lock


def write_text(path: Path, text: str) -> None:
    atomic_write(path, lambda tmp: tmp.write_text(text))


def is_run(folder: Path) -> bool:
    return (Path(folder) / CONFIG).is_file()


def has_checkpoint(folder: Path) -> bool:
    """True when the run reached its first checkpoint (it has trainer state to resume from)."""
    return (Path(folder) / TRAINER).is_file()


def check_new_run_dir(folder: Path) -> None:
    """A fresh run may go into a missing or empty folder only: never over another run's files."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise RunError(f"{folder}: exists and is not a folder")
    if folder.is_dir() and any(folder.iterdir()):
        if not is_run(folder):
            what = "is not empty"
        elif has_checkpoint(folder):
            what = "holds a run (continue it with --resume)"
        else:
            what = "holds a run stopped before its first checkpoint (start it again with --resume)"
        raise RunError(f"{folder}: {what}; choose another --out")


def save_config(folder: Path, config: dict[str, Any]) -> None:
    write_text(Path(folder) / CONFIG, dump_yaml({"kind": RUN_KIND, **config}))


def load_config(folder: Path) -> dict[str, Any]:
    """The plain-data config of a run; a missing or foreign folder is a RunError."""
    folder = Path(folder)
    if not folder.is_dir():
        raise RunError(f"{folder}: no such run folder")
    if not (folder / CONFIG).is_file():
        raise RunError(f"{folder}: not an attnlab run (no {CONFIG})")
    try:
        data = read_yaml(folder / CONFIG)
    except ConfigError as err:
        raise RunError(str(err)) from None
    if data.get("kind") != RUN_KIND:
        raise RunError(f"{folder / CONFIG}: not an attnlab run config (kind is {data.get('kind')!r})")
    data = dict(data)
    data.pop("kind")
    return data


def _strict(value: Any) -> Any:
    """value with every non-finite float replaced by None (JSON has no NaN or Infinity)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _strict(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_strict(v) for v in value]
    return value


def append_metrics(folder: Path, record: dict[str, Any]) -> None:
    """Append one record to metrics.jsonl, as strict JSON (non-finite numbers become null)."""
    with open(Path(folder) / METRICS, "a") as f:
        f.write(json.dumps(_strict(record), allow_nan=False) + "\n")


def read_metrics(folder: Path) -> list[dict[str, Any]]:
    """The records of metrics.jsonl; a last line without its newline that does not parse is a
    record cut short by a kill (or still being written) and is left out."""
    path = Path(folder) / METRICS
    if not path.is_file():
        return []
    text = path.read_text()
    lines = text.splitlines()
    records = []
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            if n == len(lines) and not text.endswith("\n"):
                break
            raise RunError(f"{path}: line {n} is not JSON") from None
    return records


def truncate_metrics(folder: Path, step: int) -> None:
    """Keep the validation records up to `step`: what a run resumed from that checkpoint had written."""
    kept = [r for r in read_metrics(folder) if r.get("split") == "val" and r.get("step", 0) <= step]
    write_text(Path(folder) / METRICS, "".join(json.dumps(r) + "\n" for r in kept))


def save_weights(folder: Path, model: nn.Module, name: str = WEIGHTS) -> None:
    """The model's weights into folder/name (model.safetensors; BEST for the best so far)."""
    atomic_write(Path(folder) / name, lambda tmp: save_model(model, str(tmp)))


def check_shapes(path: Path, shapes: dict[str, tuple[int, ...]], model: nn.Module) -> None:
    """RunError unless every tensor in `shapes` (name -> shape, read from path) that model has fits it."""
    wanted = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    wrong = [k for k in shapes if k in wanted and shapes[k] != wanted[k]]
    if wrong:
        k = wrong[0]
        raise RunError(f"{path}: weights do not match the config's model ({k} is {shapes[k]}, expected {wanted[k]})")


def load_weights(folder: Path, model: nn.Module, name: str = WEIGHTS) -> None:
    """Load folder/name (model.safetensors) into model; missing, corrupt or mismatched files are RunErrors."""
    path = Path(folder) / name
    if not path.is_file():
        raise RunError(f"{path}: missing (the run has no saved weights yet)")
    try:
        with safe_open(str(path), framework="pt") as f:
            shapes = {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}  # noqa: SIM118 (safe_open is not iterable)
        check_shapes(path, shapes, model)
        missing, unexpected = load_model(model, str(path), strict=False)
    except (SafetensorError, OSError, RuntimeError, ValueError) as err:
        if isinstance(err, RunError):
            raise
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise RunError(f"{path}: cannot load weights ({first})") from None
    if missing or unexpected:
        names = [f"missing {k}" for k in sorted(missing)[:3]] + [f"unexpected {k}" for k in sorted(unexpected)[:3]]
        raise RunError(f"{path}: weights do not match the config's model ({', '.join(names)})")


def save_trainer(folder: Path, tensors: dict[str, torch.Tensor], state: dict[str, Any]) -> None:
    """Tensors and JSON-able state into trainer.safetensors, in one atomic write."""
    tensors = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
    meta = {"state": json.dumps(state)}
    atomic_write(Path(folder) / TRAINER, lambda tmp: save_file(tensors, str(tmp), metadata=meta))


def save_checkpoint(
    folder: Path,
    model: nn.Module,
    record: dict[str, Any],
    trainer: tuple[dict[str, torch.Tensor], dict[str, Any]],
    *,
    improved: bool,
    keep: int = 0,
) -> None:
    """What an evaluation writes, in order: its metrics record, the weights, the weights again as
    best.safetensors when the metric improved and as checkpoints/step-N.safetensors when keep > 0
    (the oldest beyond `keep` removed), and the trainer state (tensors, state) last: the
    checkpoint is complete once that file is, and a resume truncates the records past it."""
    append_metrics(folder, record)
    save_weights(folder, model)
    if improved:
        save_weights(folder, model, BEST)
    if keep > 0:
        (Path(folder) / KEPT).mkdir(exist_ok=True)
        save_weights(folder, model, f"{KEPT}/step-{record['step']:07d}.safetensors")
        for _, old in kept_checkpoints(folder)[:-keep]:
            old.unlink()
    save_trainer(folder, *trainer)


def kept_checkpoints(folder: Path) -> list[tuple[int, Path]]:
    """(step, path) of the weights kept under checkpoints/, oldest first."""
    paths = sorted((Path(folder) / KEPT).glob("step-*.safetensors"))
    return [(int(p.stem.removeprefix("step-")), p) for p in paths if p.stem.removeprefix("step-").isdigit()]


def average_checkpoints(folder: Path, model: nn.Module, last: int) -> list[int]:
    """Load into model the mean of the last `last` kept checkpoints' weights; the steps averaged.

    Checkpoint averaging (Vaswani et al. 2017, section 6.1): the element-wise mean of the weights
    saved at the last few evaluations, a cheap ensemble of one run's late iterates. Tensors that
    are not floating point (counters, flags) keep the newest checkpoint's values.

    Raises:
        RunError: fewer than `last` checkpoints are kept (train.keep_checkpoints), or one cannot be loaded.
    """
    kept = kept_checkpoints(folder)[-last:] if last > 0 else []
    if len(kept) < max(last, 1):
        raise RunError(
            f"{Path(folder) / KEPT}: {len(kept)} checkpoint(s) kept, {last} asked; train with train.keep_checkpoints={last}"
        )
    total: dict[str, torch.Tensor] = {}
    for _, path in kept:
        load_weights(folder, model, str(path.relative_to(folder)))
        for name, tensor in model.state_dict().items():
            total[name] = total[name] + tensor.double() if name in total else tensor.double().clone()
    newest = model.state_dict()
    mean = {
        k: (v / len(kept)).to(newest[k].dtype) if newest[k].is_floating_point() else newest[k] for k, v in total.items()
    }
    model.load_state_dict(mean)
    return [step for step, _ in kept]


def load_trainer(folder: Path, *, tensors: bool = True) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """trainer.safetensors' tensors and state; tensors=False reads the state alone (no tensor is loaded)."""
    path = Path(folder) / TRAINER
    if not path.is_file():
        raise RunError(f"{path}: missing (nothing to resume from)")
    try:
        with safe_open(str(path), framework="pt") as f:
            state = json.loads((f.metadata() or {})["state"])
            loaded = {k: f.get_tensor(k) for k in f.keys()} if tensors else {}  # noqa: SIM118 (not iterable)
    except (SafetensorError, OSError, KeyError, json.JSONDecodeError) as err:
        raise RunError(f"{path}: corrupt trainer state ({type(err).__name__})") from None
    return loaded, state


def ship_run(folder: Path, dest: Path) -> int:
    """Copy a finished run's config, final weights and learning curve into dest (a reference run to
    ship, e.g. in the package for the tour); the trainer state stays behind. Returns the bytes copied.

    A run without a test record (not finished) is a RunError naming the folder.
    """
    import shutil

    folder, dest = Path(folder), Path(dest)
    if not any(r.get("split") == "test" for r in read_metrics(folder)):
        raise RunError(f"{folder}: the run has not finished (no test record in {METRICS}); train it first")
    dest.mkdir(parents=True, exist_ok=True)
    for name in (CONFIG, WEIGHTS, METRICS):
        shutil.copyfile(folder / name, dest / name)
    return sum((dest / name).stat().st_size for name in (CONFIG, WEIGHTS, METRICS))
