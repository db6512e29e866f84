"""Finding what the explorer shows: run folders, comparison folders and tour results under the roots.

Every root the server is given gets a label (its folder name, made unique); a run's id is
"<label>/<path inside the root>" with "/" separators, e.g. "tour/babi/runs/memn2n-seed0". Ids are
only ever looked up in what `discover` found, never joined onto a path, so a request cannot name a
folder outside the roots. Files (the plots of a comparison) go through `resolve_file`, which
refuses anything that is not inside a root once symbolic links are followed.

A run's summary (task, family, parameters, final metrics, learning curve) is read from its
config.yaml and metrics.jsonl only; a folder whose files are malformed or half-written gets an
`error` line instead, and the others are unaffected.
"""

from __future__ import annotations

import json
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from attnlab.errors import ConfigError
from attnlab.train import checkpoint

MAX_DEPTH = 8  # folders below a root that are searched
MAX_FOLDERS = 20000  # folders visited per root: a huge tree is cut off, not walked for minutes
FILE_SUFFIXES = (".png", ".svg")  # what /api/file serves
CURVE_POINTS = 200  # at most this many points per learning curve


class ExplorerError(ValueError):
    """A request the explorer refuses: an HTTP status and one line naming the field and the fault."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Root:
    """A folder given on the command line."""

    label: str  # the first part of every id under it
    path: Path  # resolved


@dataclass
class Found:
    """What `discover` found under the roots."""

    runs: dict[str, Path] = field(default_factory=dict)  # run id -> folder
    compares: dict[str, Path] = field(default_factory=dict)  # comparison id -> folder holding results.json
    tours: dict[str, Path] = field(default_factory=dict)  # tour id -> folder holding metrics.json


def make_roots(paths: list[Path]) -> list[Root]:
    """Roots with unique labels; missing folders are an ExplorerError naming them."""
    roots: list[Root] = []
    labels: set[str] = set()
    for path in paths:
        resolved = Path(path).expanduser().resolve()
        if not resolved.is_dir():
            raise ExplorerError(400, f"runs folder {path}: no such folder")
        label, n = resolved.name or "root", 2
        while label in labels:
            label, n = f"{resolved.name}-{n}", n + 1
        labels.add(label)
        roots.append(Root(label, resolved))
    return roots


def discover(roots: list[Root]) -> Found:
    """Every run, comparison and tour folder under the roots, sorted by id."""
    found = Found()
    for root in roots:
        visited = 0
        for folder, dirs, files in os.walk(root.path, followlinks=False):
            here = Path(folder)
            rel = here.relative_to(root.path)
            depth = len(rel.parts)
            visited += 1
            dirs[:] = sorted(d for d in dirs if not d.startswith(".")) if depth < MAX_DEPTH else []
            if visited > MAX_FOLDERS:
                dirs[:] = []
                continue
            key = root.label if not rel.parts else f"{root.label}/{rel.as_posix()}"
            if checkpoint.CONFIG in files:
                found.runs[key] = here
                dirs[:] = []  # a run holds no other runs (its viz/ folder holds figures)
                continue
            if "results.json" in files:
                found.compares[key] = here
            if "metrics.json" in files and "report.html" in files:
                found.tours[key] = here
    found.runs = dict(sorted(found.runs.items()))
    found.compares = dict(sorted(found.compares.items()))
    return found


def check_id(name: str, value: str | None) -> str:
    """A run or comparison id from a request: present, short, no '..' or absolute part."""
    if value is None or value == "":
        raise ExplorerError(400, f"{name}: missing (give ?{name}=ID from /api/runs)")
    if len(value) > 500:
        raise ExplorerError(400, f"{name}: longer than 500 characters")
    parts = value.replace("\\", "/").split("/")
    if ".." in parts or value.startswith("/") or "\x00" in value:
        raise ExplorerError(400, f"{name}: '..', absolute paths and NUL are not allowed in ids")
    return value


def resolve_file(roots: list[Root], value: str | None) -> Path:
    """The file that "<label>/<path>" names, if it is a .png or .svg inside its root.

    Raises:
        ExplorerError: 400 for a malformed path or suffix, 403 outside the root, 404 when missing.
    """
    value = check_id("path", value)
    label, _, rest = value.partition("/")
    root = next((r for r in roots if r.label == label), None)
    if root is None or not rest:
        raise ExplorerError(404, f"path: {value!r} is under no runs folder (labels: {[r.label for r in roots]})")
    if Path(rest).suffix.lower() not in FILE_SUFFIXES:
        raise ExplorerError(400, f"path: only {', '.join(FILE_SUFFIXES)} files are served")
    target = (root.path / rest).resolve()
    if not target.is_relative_to(root.path):
        raise ExplorerError(403, f"path: {value!r} leads outside its runs folder")
    if not target.is_file():
        raise ExplorerError(404, f"path: {value!r} is not a file")
    return target


class Summaries:
    """Run summaries cached by the (size, mtime) of config.yaml and metrics.jsonl: the index stays fast."""

    def __init__(self) -> None:
        self._cache: dict[Path, tuple[tuple[int, ...], dict[str, Any]]] = {}
        self._lock = threading.Lock()

    def get(self, run_id: str, folder: Path) -> dict[str, Any]:
        stamp = _stamp(folder)
        with self._lock:
            hit = self._cache.get(folder)
        if hit is not None and hit[0] == stamp:
            return {**hit[1], "id": run_id}
        summary = run_summary(folder)
        with self._lock:
            self._cache[folder] = (stamp, summary)
        return {**summary, "id": run_id}


def _stamp(folder: Path) -> tuple[int, ...]:
    out: list[int] = []
    for name in (checkpoint.CONFIG, checkpoint.METRICS, checkpoint.WEIGHTS):
        try:
            st = (folder / name).stat()
            out += [st.st_size, st.st_mtime_ns]
        except OSError:
            out += [-1, -1]
    return tuple(out)


def run_summary(folder: Path) -> dict[str, Any]:
    """Task, family, parameters, final metrics and learning curve of a run folder, read from its files.

    Returns:
        {"task", "family", "metric", "parameters", "steps", "final": {name: value}, "final_split",
        "curve": [{"step", "train_loss", "loss", metric}], "error": one line or None}
    """
    out: dict[str, Any] = {
        "task": None,
        "family": None,
        "metric": None,
        "parameters": None,
        "steps": None,
        "final": {},
        "final_split": None,
        "curve": [],
        "error": None,
    }
    try:
        config = _read_config(folder)
        task, model = config.get("task") or {}, config.get("model") or {}
        if not isinstance(task, dict) or not isinstance(model, dict):
            raise ConfigError(f"{folder / checkpoint.CONFIG}: task and model must be mappings")
        out["task"], out["family"] = task.get("name"), model.get("name")
        out["metric"] = _metric_of(out["task"])
        out["steps"] = (config.get("train") or {}).get("steps")
        records = checkpoint.read_metrics(folder)
        tests = [r for r in records if r.get("split") == "test"]
        vals = [r for r in records if r.get("split") == "val"]
        final = tests[-1] if tests else (vals[-1] if vals else {})
        out["final_split"] = final.get("split")
        out["parameters"] = final.get("parameters")
        out["final"] = {k: v for k, v in final.items() if isinstance(v, int | float) and k not in ("parameters",)}
        keys = ("step", "train_loss", "loss", out["metric"])
        every = max(1, len(vals) // CURVE_POINTS)
        out["curve"] = [{k: r.get(k) for k in keys if k} for r in vals[::every]]
        if not (folder / checkpoint.WEIGHTS).is_file():
            out["error"] = f"{folder.name}: no {checkpoint.WEIGHTS} yet (training has not saved weights)"
    except (ConfigError, OSError, UnicodeDecodeError) as err:
        out["error"] = _one_line(err)
    return out


_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml: the index reads hundreds of configs


def _read_config(folder: Path) -> dict[str, Any]:
    """A run's config.yaml as checkpoint.load_config reads it, parsed by libyaml when present.

    Anything unusual (a parse error, a foreign kind) goes through checkpoint.load_config, so the
    error line is the one every command prints.
    """
    try:
        data = yaml.load((folder / checkpoint.CONFIG).read_text(), Loader=_LOADER)
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        data = None
    if not isinstance(data, dict) or data.get("kind") != checkpoint.RUN_KIND:
        return checkpoint.load_config(folder)
    return {k: v for k, v in data.items() if k != "kind"}


def _metric_of(task: Any) -> str | None:
    from attnlab.tasks import TASKS

    try:
        return TASKS.get(str(task)).metric
    except (ConfigError, KeyError, ValueError):
        return None


def compare_summary(folder: Path, compare_id: str) -> dict[str, Any]:
    """The table and plots of a comparison folder (attnlab.train.compare's results.json)."""
    out: dict[str, Any] = {"id": compare_id, "task": None, "metric": None, "sweep": None, "summary": [], "plots": []}
    try:
        data = json.loads((folder / "results.json").read_text())
        if not isinstance(data, dict):
            raise ValueError("results.json is not an object")
        out.update({k: data.get(k) for k in ("task", "metric", "sweep", "command")})
        out["summary"] = [r for r in data.get("summary") or [] if isinstance(r, dict)]
        out["error"] = None
    except (OSError, ValueError) as err:
        out["error"] = f"{folder.name}/results.json: {_one_line(err)}"
    out["plots"] = sorted(f"{compare_id}/{p.name}" for p in folder.glob("*.png"))
    return out


def tour_probe_head(tours: dict[str, Path]) -> dict[str, Any] | None:
    """The pretrained pronoun probe's result as a tour wrote it in metrics.json, if any tour holds one."""
    for tour_id, folder in tours.items():
        try:
            data = json.loads((folder / "metrics.json").read_text())
            probe = data["pretrained"]["pronoun_probe"]
            layer, head = (int(v) for v in probe["best_head"])
        except (OSError, ValueError, KeyError, TypeError):
            continue
        return {**probe, "best_head": [layer, head], "source": f"{tour_id}/metrics.json"}
    return None


def _one_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return text[0] if text else type(err).__name__
