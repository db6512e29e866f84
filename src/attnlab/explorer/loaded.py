"""Trained runs held in memory for the explorer: a bounded LRU cache, one lock per model.

`capture` attaches taps to a model's modules for the length of a forward pass, so two requests
must never run the same model under capture at once: every forward pass of a cached run goes
through `LoadedRun.traced`, which holds that run's lock. Each request gets its own fresh Trace and
nothing from one request is kept on the model, so answers are pure functions of (run, request).

The examples are the run's test split (`Task.eval_set`), at most MAX_EXAMPLES of them, kept with
the run; `traced` runs the model through `attnlab.train.examples.traced_examples` on the rows a
request picked (or typed), handing it a view of the task that yields exactly those rows.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import torch
from torch import Tensor, nn

from attnlab.errors import AttnlabError
from attnlab.tasks.base import Batch, Task
from attnlab.train import Run, load_run
from attnlab.train.examples import TracedExamples, traced_examples

MAX_EXAMPLES = 64  # test examples a run view can pick from
CACHE_SIZE = 8  # runs kept loaded


class _Picked:
    """The task of a run, except that its test split is one given batch (the picked or typed rows).

    Tasks that know more about their split's rows (bAbI's supporting facts, the digits' boxes)
    answer for the picked rows only; for typed rows they know nothing (all False / no boxes).
    """

    def __init__(self, task: Task, batch: Batch, rows: Tensor | None):
        self._task, self._batch, self._rows = task, batch, rows

    def __getattr__(self, name: str) -> Any:
        return getattr(self._task, name)

    def eval_set(self, size: int, split: str = "test") -> Batch:
        return self._batch.rows(slice(0, size))

    def support(self, split: str) -> Tensor:
        full = self._task.support(split)  # type: ignore[attr-defined]
        if self._rows is None:
            return torch.zeros(len(self._batch), full.shape[1], dtype=torch.bool)  # (b, m)
        return full[self._rows]  # (b, m)


@dataclass
class _Given:
    """A task and a model: what traced_examples needs (attnlab.train.examples.HasTaskAndModel)."""

    task: Task
    model: nn.Module


@dataclass
class LoadedRun:
    """A run rebuilt from its folder, its test examples, and the lock its forward passes take."""

    run: Run
    examples: Batch  # the first <= MAX_EXAMPLES test examples
    lock: threading.Lock = field(default_factory=threading.Lock)
    kinds: list[str] = field(default_factory=list)  # what the model's trace records (from example 0)

    @property
    def task(self) -> Task:
        return self.run.task

    def pick(self, example: int) -> tuple[Batch, Tensor]:
        """Test example `example` as a batch of one, and its row number."""
        rows = torch.tensor([example])
        return self.examples.rows(rows), rows

    def traced(self, batch: Batch, rows: Tensor | None) -> tuple[TracedExamples, Task]:
        """The model on batch under capture (this run's lock held), and the task view that yields batch.

        Args:
            batch: inputs (b, ...) and targets (b, n).
            rows: the test rows batch holds, or None for typed input.
        """
        task = cast(Task, _Picked(self.run.task, batch, rows))
        with self.lock:
            seen = traced_examples(_Given(task, self.run.model), len(batch), "test")
        return seen, task

    def forward(self, work: Any) -> Any:
        """Call work(run) with this run's lock held (for passes that are not traced_examples)."""
        with self.lock, torch.no_grad():
            return work(self.run)


class RunCache:
    """At most `size` loaded runs, least recently used dropped first; loads happen once per folder."""

    def __init__(self, size: int = CACHE_SIZE):
        self.size = size
        self._runs: OrderedDict[Path, LoadedRun] = OrderedDict()
        self._lock = threading.Lock()
        self._loading: dict[Path, threading.Lock] = {}

    def __contains__(self, folder: Path) -> bool:
        with self._lock:
            return folder in self._runs

    def __len__(self) -> int:
        with self._lock:
            return len(self._runs)

    def get(self, folder: Path) -> LoadedRun:
        """The loaded run of folder.

        Raises:
            AttnlabError (RunError, ConfigError, DataError): the folder cannot be rebuilt; one line.
        """
        with self._lock:
            if folder in self._runs:
                self._runs.move_to_end(folder)
                return self._runs[folder]
            loading = self._loading.setdefault(folder, threading.Lock())
        with loading:
            with self._lock:
                if folder in self._runs:
                    return self._runs[folder]
            try:
                loaded = _load(folder)
                with self._lock:
                    self._runs[folder] = loaded
                    while len(self._runs) > self.size:
                        self._runs.popitem(last=False)
            finally:
                with self._lock:
                    self._loading.pop(folder, None)  # after the insert: a later request finds the run
        return loaded


def _load(folder: Path) -> LoadedRun:
    try:
        run = load_run(folder)
        examples = run.task.eval_set(MAX_EXAMPLES, "test")
    except AttnlabError:
        raise
    except (OSError, RuntimeError, KeyError, TypeError, ValueError) as err:  # a run half-written or from elsewhere
        first = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise AttnlabError(f"{folder.name}: cannot load ({type(err).__name__}: {first})") from None
    loaded = LoadedRun(run, examples)
    seen, _ = loaded.traced(*loaded.pick(0))
    loaded.kinds = seen.trace.kinds()
    return loaded
