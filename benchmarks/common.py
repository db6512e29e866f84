"""What every benchmark records beside its numbers, where its results go, and how ratios get intervals.

    import common                        # benchmarks/ is sys.path[0] under `python benchmarks/x.py`
    result = {..., "machine": common.machine()}
    common.write_result(result, "x.json")   # benchmarks/results/x.json, written atomically

`machine()` is the date, the command line, the host's CPU model and count, the instruction set
torch dispatches to (AVX2, AVX512, ...), platform, Python and torch versions and torch's thread
count at the moment it is called (after the script set its threads).
`bootstrap_median_ci(values)` is the 95% percentile-bootstrap interval of a median, used for the
median of per-round paired ratios; `median_ci(values)` gives the median, that interval and n.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from attnlab.train.checkpoint import write_text

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"  # the one results root
FIGURES = ROOT / "docs" / "figures"


def command(argv: Sequence[str] | None = None) -> str:
    """The command line as typed from the repository root: python, the script, its arguments."""
    script = Path(sys.argv[0]).resolve()
    shown = script.relative_to(ROOT) if script.is_relative_to(ROOT) else script
    return shlex.join(["python", str(shown), *(sys.argv[1:] if argv is None else argv)])


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo, or platform.processor() where there is none."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine(argv: Sequence[str] | None = None, **extra: Any) -> dict[str, Any]:
    """Date (UTC), command line, CPU model, count and capability, platform, Python, torch and its threads,
    then extra.

    argv: the arguments a script's main() was given (default: sys.argv[1:]).
    """
    return {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "command": command(argv),
        "cpu_model": cpu_model(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        **extra,
    }


def write_result(result: dict[str, Any], name: str, out: str | Path | None = None) -> Path:
    """JSON into RESULTS / name, or into out where a script's --out gives a path; renamed into place when complete."""
    path = RESULTS / name if out is None else Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text(path, json.dumps(result, indent=1) + "\n")
    return path


def bootstrap_median_ci(values: np.ndarray, seed: int = 0, draws: int = 2000) -> tuple[float, float]:
    """A 95% percentile-bootstrap interval of the median of values (n,)."""
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, len(values), size=(draws, len(values)))  # (draws, n)
    medians = np.median(values[picks], axis=1)  # (draws,)
    return float(np.quantile(medians, 0.025)), float(np.quantile(medians, 0.975))


def median_ci(values: Sequence[float] | np.ndarray) -> dict[str, Any]:
    """{"median", "ci95" (bootstrap 95% interval of the median), "n"} of a non-empty sample."""
    array = np.asarray(values, dtype=float)  # (n,)
    lo, hi = bootstrap_median_ci(array)
    return {"median": float(np.median(array)), "ci95": [lo, hi], "n": len(array)}
