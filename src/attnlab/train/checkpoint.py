"""Run directories: the one place that writes and reads configs, metrics, weights and trainer state.

A run directory holds
    config.yaml        what was trained: task, model and training configs (plain data)
    metrics.jsonl      one JSON object per evaluation, appended as training goes
    model.safetensors  the model's weights
    trainer.safetensors  everything a resumed run needs, in one file: the weights again, the
                       optimizer's tensors, the RNG states, and (as JSON in its metadata) the
                       step, the best metric and the optimizer's hyperparameters
Every file is written to a temporary name in the same folder and renamed over the old one, so a
run killed at any moment keeps its last complete checkpoint; keeping the trainer state in one
file makes each checkpoint a single atomic rename. Nothing is ever unpickled: tensors come from
safetensors, everything else from YAML or JSON.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
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


def write_text(path: Path, text: str) -> None:
    atomic_write(path, lambda tmp: tmp.write_text(text))


def is_run(folder: Path) -> bool:
    return (Path(folder) / CONFIG).is_file()


def check_new_run_dir(folder: Path) -> None:
    """A fresh run may go into a missing or empty folder only: never over another run's files."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise RunError(f"{folder}: exists and is not a folder")
    if folder.is_dir() and any(folder.iterdir()):
        what = "holds a run (continue it with --resume)" if is_run(folder) else "is not empty"
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


def append_metrics(folder: Path, record: dict[str, Any]) -> None:
    with open(Path(folder) / METRICS, "a") as f:
        f.write(json.dumps(record) + "\n")


def read_metrics(folder: Path) -> list[dict[str, Any]]:
    path = Path(folder) / METRICS
    if not path.is_file():
        return []
    records = []
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            raise RunError(f"{path}: line {n} is not JSON") from None
    return records


def truncate_metrics(folder: Path, step: int) -> None:
    """Keep the validation records up to `step`: what a run resumed from that checkpoint had written."""
    kept = [r for r in read_metrics(folder) if r.get("split") == "val" and r.get("step", 0) <= step]
    write_text(Path(folder) / METRICS, "".join(json.dumps(r) + "\n" for r in kept))


def save_weights(folder: Path, model: nn.Module) -> None:
    atomic_write(Path(folder) / WEIGHTS, lambda tmp: save_model(model, str(tmp)))


def load_weights(folder: Path, model: nn.Module) -> None:
    """Load model.safetensors into model; missing, corrupt or mismatched files are RunErrors."""
    path = Path(folder) / WEIGHTS
    if not path.is_file():
        raise RunError(f"{path}: missing (the run has no saved weights yet)")
    try:
        with safe_open(str(path), framework="pt") as f:
            shapes = {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}  # noqa: SIM118 (safe_open is not iterable)
        wanted = {k: tuple(v.shape) for k, v in model.state_dict().items()}
        wrong = [k for k in shapes if k in wanted and shapes[k] != wanted[k]]
        if wrong:
            k = wrong[0]
            raise RunError(
                f"{path}: weights do not match the config's model ({k} is {shapes[k]}, expected {wanted[k]})"
            )
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


def load_trainer(folder: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    path = Path(folder) / TRAINER
    if not path.is_file():
        raise RunError(f"{path}: missing (nothing to resume from)")
    try:
        with safe_open(str(path), framework="pt") as f:
            state = json.loads((f.metadata() or {})["state"])
            tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (safe_open is not iterable)
    except (SafetensorError, OSError, KeyError, json.JSONDecodeError) as err:
        raise RunError(f"{path}: corrupt trainer state ({type(err).__name__})") from None
    return tensors, state
