"""Capturing attention weights without slowing the model down.

    with capture(model) as trace:
        model(x)
    trace.select(kind="cross")[0].weights      # (b, h, i, j), per head

Modules that call `attend` inherit `Traced`. While no trace is attached their only cost is one
`is None` check; `capture` attaches a tap to every `Traced` submodule for the duration of the
block, and those modules then ask `attend` for weights and hand them to the tap. No forward hooks,
no flags threaded through signatures, nothing cached on the modules after the block.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn


@dataclass
class TraceRecord:
    path: str  # module path inside the captured model ("" for the model itself)
    kind: str  # what is attended: "self", "cross", "memory", "read", "write", "glimpse", ...
    weights: Tensor  # (b, h, i, j) per head, or the module's own documented shape
    step: int  # this call's index among the calls of the same path (recurrent and decoding steps)
    extra: dict[str, Any] = field(default_factory=dict)  # anything else the module reports


class Trace:
    """The attention calls recorded inside one `capture` block, in call order."""

    def __init__(self, detach: bool = True):
        self.records: list[TraceRecord] = []
        self.detach = detach
        self._steps: dict[str, int] = {}

    def record(self, path: str, kind: str, weights: Tensor, **extra: Any) -> None:
        step = self._steps.get(path, 0)
        self._steps[path] = step + 1
        if self.detach:
            weights = weights.detach()
        self.records.append(TraceRecord(path, kind, weights, step, extra))

    def __iter__(self) -> Iterator[TraceRecord]:
        return iter(self.records)

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> TraceRecord:
        return self.records[index]

    def paths(self) -> list[str]:
        """Module paths that recorded, in the order they first did."""
        return list(dict.fromkeys(r.path for r in self.records))

    def kinds(self) -> list[str]:
        """Kinds that were recorded ("self", "cross", "memory", ...), in the order they first were."""
        return list(dict.fromkeys(r.kind for r in self.records))

    def select(self, *, path: str | None = None, kind: str | None = None) -> list[TraceRecord]:
        """Records of one module path and/or one kind."""
        return [r for r in self.records if (path is None or r.path == path) and (kind is None or r.kind == kind)]

    def stack(self, path: str) -> Tensor:
        """The weights of every step of one module path, stacked: (t, ...) with t steps."""
        records = self.select(path=path)
        if not records:
            raise KeyError(f"no attention recorded at {path!r}; recorded paths: {self.paths()}")
        return torch.stack([r.weights for r in records])  # (t, b, h, i, j)


class _Tap:
    __slots__ = ("path", "trace")

    def __init__(self, trace: Trace, path: str):
        self.trace = trace
        self.path = path

    def __call__(self, kind: str, weights: Tensor, **extra: Any) -> None:
        self.trace.record(self.path, kind, weights, **extra)


class Traced:
    """Mixin for an nn.Module that calls `attend` and can report its weights.

    In forward: `need = self.tracing`; call attend with need_weights=need (or anything that already
    needs weights); then `if need: self.record(kind, weights)`.
    """

    _attn_tap: _Tap | None = None  # set only while a trace is attached

    @property
    def tracing(self) -> bool:
        return self._attn_tap is not None

    def record(self, kind: str, weights: Tensor, **extra: Any) -> None:
        """Hand weights to the attached trace; does nothing when none is attached."""
        tap = self._attn_tap
        if tap is not None:
            tap(kind, weights, **extra)


@contextlib.contextmanager
def capture(module: nn.Module, *, detach: bool = True) -> Iterator[Trace]:
    """Record every attention call of `module` and its submodules inside the block.

    Args:
        module: the model.
        detach: store weights detached from the graph (keep gradients with detach=False).
    Yields:
        The Trace, filled as the block runs.
    """
    trace = Trace(detach=detach)
    previous: list[tuple[Traced, _Tap | None]] = []
    for path, sub in module.named_modules():
        if isinstance(sub, Traced):
            previous.append((sub, sub.__dict__.get("_attn_tap")))
            sub._attn_tap = _Tap(trace, path)
    try:
        yield trace
    finally:
        for sub, tap in previous:
            if tap is None:
                del sub._attn_tap
            else:
                sub._attn_tap = tap
