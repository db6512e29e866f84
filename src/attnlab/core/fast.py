"""Which implementation of a step runs: the readable one, a fused one, or a compiled one.

    "eager"     the step as written beside the paper's equations: the reference (oracle)
    "fast"      the same maths restructured into few, large ops (no compile cost)
    "compiled"  the fast step through `torch.compile`, paid once per process

Modules with a fast step inherit `FastPath` and branch on `self.path` (`"eager"` whenever a
trace is attached, so captured weights always come from the readable step). `set_path(model,
path)` sets every such submodule and returns one line per module saying which path it runs;
`attnlab train` prints them. `compiled(fn, name)` wraps `torch.compile`; when compiling is not
possible (no C compiler, an unsupported op, ATTNLAB_EAGER=1) the call runs `fn` eagerly and
one line on stderr says why. Compile seconds per name are kept in `COMPILE_SECONDS`.
`BACKEND` names torch.compile's backend: "inductor" (generated C++ kernels) for real runs; the
test suite sets "aot_eager" (the same captured graphs and autograd split, run by aten ops) for
all but a few tests, since inductor's C++ builds cost tens of seconds each.

Everything here imports torch only.
"""

from __future__ import annotations

import functools
import os
import shutil
import sys
import time
from collections.abc import Callable
from typing import Any, TypeVar

import torch
from torch import nn

PATHS = ("eager", "fast", "compiled")
COMPILE_SECONDS: dict[str, float] = {}  # name -> seconds spent compiling (first calls) in this process
FALLBACKS: dict[str, str] = {}  # name -> why it runs eagerly instead
BACKEND: Any = "inductor"  # torch.compile's backend (a name, or a backend callable) for every `compiled` step wrapped after it is set

F = TypeVar("F", bound=Callable[..., Any])


def check_path(path: str) -> str:
    if path not in PATHS:
        raise ValueError(f"path must be one of {PATHS}, got {path!r}")
    return path


class FastPath:
    """Mixin for a module with a fast step: `path` says which implementation runs.

    A subclass names its fast step in `fast_step_name` (for the line `set_path` prints) and, in
    its forward, runs the eager step when `self.path == "eager"` or a trace is attached.
    """

    path: str = "fast"
    fast_step_name: str = "fused step"

    def set_path(self, path: str) -> None:
        self.path = check_path(path)


def under_vmap(*tensors: torch.Tensor) -> bool:
    """Whether any of the tensors is batched by torch.vmap (K stacked models, `attnlab.train.vectorised`).

    A fused step that runs its own autograd node (`torch.autograd.Function`) without a batching
    rule must take its eager step there: a batched tensor reports requires_grad=False, so the node
    would be skipped and the stacked parameters would get no gradient.
    """
    return any(bool(torch._C._functorch.is_batchedtensor(t)) for t in tensors)


def why_not_compiled() -> str | None:
    """Why `torch.compile` cannot run here, or None when it can."""
    if os.environ.get("ATTNLAB_EAGER", "") not in ("", "0"):
        return "ATTNLAB_EAGER is set"
    if sys.platform == "win32":
        return "torch.compile needs a C++ compiler toolchain this platform lacks"
    if shutil.which(os.environ.get("CXX", "g++")) is None and shutil.which("c++") is None:
        return "no C++ compiler on PATH (install gcc or g++)"
    return None


def compiled(fn: F, name: str) -> F:
    """`fn` compiled by torch.compile on first call, or `fn` itself with one line saying why not.

    Shapes: the first shape compiles a static graph; a second shape compiles one graph with the
    changed sizes symbolic, so varying batch or sequence sizes do not recompile every step.
    """
    reason = why_not_compiled()
    if reason is not None:
        return _eager(fn, name, reason)
    from torch._dynamo.exc import TorchDynamoException  # imported here: torch._dynamo is slow to import
    from torch._dynamo.utils import counters

    fast = torch.compile(fn, fullgraph=True, backend=BACKEND)

    @functools.wraps(fn)
    def run(*args: Any, **kwargs: Any) -> Any:
        if name in FALLBACKS:
            return fn(*args, **kwargs)
        graphs = counters["stats"]["unique_graphs"]
        started = time.perf_counter()
        try:
            out = fast(*args, **kwargs)
        except TorchDynamoException as err:  # compiling failed: say why once, run eagerly from now on
            text = str(err).strip()
            FALLBACKS[name] = f"torch.compile failed: {type(err).__name__}: {text.splitlines()[0] if text else ''}"
            print(f"attnlab: {name} runs eager: {FALLBACKS[name]}", file=sys.stderr)
            return fn(*args, **kwargs)
        if counters["stats"]["unique_graphs"] != graphs:  # this call compiled a graph
            COMPILE_SECONDS[name] = COMPILE_SECONDS.get(name, 0.0) + time.perf_counter() - started
        return out

    return run  # type: ignore[return-value]


def seconds_compiling() -> float:
    """Seconds this process has spent in torch.compile: forward graphs and the backward graphs that
    compile at their first backward call (which `COMPILE_SECONDS` does not see)."""
    if "torch._dynamo" not in sys.modules:
        return 0.0
    from torch._dynamo.utils import compilation_time_metrics as metrics

    return float(sum(sum(metrics.get(key, [])) for key in ("_compile.compile_inner", "backward._backward_impl")))


def _eager(fn: F, name: str, reason: str) -> F:
    if name not in FALLBACKS:
        FALLBACKS[name] = reason
        print(f"attnlab: {name} runs eager: {reason}", file=sys.stderr)
    return fn


def set_path(model: nn.Module, path: str) -> list[str]:
    """Set `path` on every FastPath submodule of model; one line per such module, saying what runs."""
    check_path(path)
    lines = []
    for name, module in model.named_modules():
        if isinstance(module, FastPath):
            module.set_path(path)
            what = {
                "eager": "eager step",
                "fast": module.fast_step_name,
                "compiled": f"compiled {module.fast_step_name}",
            }
            label = name or type(module).__name__
            lines.append(f"{label} ({type(module).__name__}): {what[path]}")
    return lines
