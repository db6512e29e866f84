"""Throughput and peak memory of attnlab's attention against PyTorch's, on this CPU.

For every sequence length, in one run and with the same shapes (fp32, CPU, PyTorch's default
thread count), the script times forward and forward+backward of

    fast         attnlab.core.attend(q, k, v)                     the fused path (no weights)
    eager        attnlab.core.attend(q, k, v, need_weights=True)  the eager path
    sdpa         F.scaled_dot_product_attention(q, k, v)          the reference
    naive        softmax(q k^T / sqrt(e)) v, written out below
    torch_mha    nn.MultiheadAttention(d, h, batch_first=True) on (b, t, d)
    attnlab_mha  attnlab.attention.MultiHeadAttention(d, h) on (b, t, d)

The variants are interleaved round-robin (every round runs each once, in a fresh seeded random
order), so machine noise and the after-effects of the previous call hit them alike; each figure is the median of `--repeats` rounds after warm-up. Ratios against SDPA are
the median of the per-round paired ratios, with a bootstrap 95% interval of that median.

Peak memory of forward+backward is measured for fast, sdpa, eager and naive at the long lengths,
each in a fresh subprocess: the peak resident set (VmHWM, reset through /proc/self/clear_refs once
the inputs exist) minus the resident set just before the call.

    python benchmarks/attention.py                # the default run (a few minutes on 2 cores)
    python benchmarks/attention.py --quick        # a smoke run in seconds
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

import common
from attnlab.attention import MultiHeadAttention
from attnlab.core import attend
from attnlab.progress import progress_bar
from common import bootstrap_median_ci

CORE_VARIANTS = ("fast", "sdpa", "eager", "naive")
MODULE_VARIANTS = ("torch_mha", "attnlab_mha")
MEMORY_VARIANTS = ("fast", "sdpa", "eager", "naive")
MODES = ("forward", "forward_backward")
# Tokens per batch (b * t) at every length, as training batches are sized: 32 x 128 ... 2 x 2048.
# Even the shortest call then takes ~10 ms, so timer noise is small.
AUTO_BATCH_TOKENS = 4096


def naive_attention(q: Tensor, k: Tensor, v: Tensor) -> Tensor:
    """softmax(q k^T / sqrt(e)) v, the textbook formula. q, k, v (b, h, t, e) -> (b, h, t, e)."""
    logits = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])  # (b, h, i, j)
    return torch.softmax(logits, dim=-1) @ v  # (b, h, i, e)


def core_call(variant: str) -> Callable[[Tensor, Tensor, Tensor], Tensor]:
    """The function `variant` stands for, taking q, k, v (b, h, t, e) and returning (b, h, t, e)."""
    if variant == "fast":
        return lambda q, k, v: attend(q, k, v).out
    if variant == "eager":
        return lambda q, k, v: attend(q, k, v, need_weights=True).out
    if variant == "sdpa":
        return lambda q, k, v: F.scaled_dot_product_attention(q, k, v)
    if variant == "naive":
        return naive_attention
    raise ValueError(f"unknown variant {variant!r}; choose one of {CORE_VARIANTS}")


def module_call(module: nn.Module, variant: str) -> Callable[[Tensor], Tensor]:
    """Self-attention through a module: x (b, t, d) -> (b, t, d)."""
    if variant == "torch_mha":
        return lambda x: module(x, x, x, need_weights=False)[0]

    def call(x: Tensor) -> Tensor:
        out = module(x)
        return out if isinstance(out, Tensor) else out[0]

    return call


def attention_flops(batch: int, heads: int, length: int, head_dim: int) -> float:
    """Forward FLOPs of q k^T and weights v: 2 matmuls of b*h*t*t*e multiply-adds."""
    return 4.0 * batch * heads * length * length * head_dim


def projection_flops(batch: int, length: int, embed_dim: int) -> float:
    """Forward FLOPs of the q, k, v and output projections of a multi-head module."""
    return 4 * 2.0 * batch * length * embed_dim * embed_dim


class Case:
    """One thing to time: a variant in one mode, with its inputs already built."""

    def __init__(self, variant: str, mode: str, fn: Callable[..., Tensor], inputs: tuple[Tensor, ...],
                 grad_out: Tensor, params=()):  # fmt: skip
        self.variant, self.mode, self.fn = variant, mode, fn
        self.inputs, self.grad_out = inputs, grad_out
        self.params = list(params)
        self.times: list[float] = []

    def run_once(self) -> float:
        if self.mode == "forward":
            with torch.no_grad():
                start = time.perf_counter()
                self.fn(*self.inputs)
                return time.perf_counter() - start
        for t in (*self.inputs, *self.params):
            t.grad = None
        start = time.perf_counter()
        out = self.fn(*self.inputs)
        out.backward(self.grad_out)
        return time.perf_counter() - start


def build_cases(length: int, batch: int, heads: int, head_dim: int) -> list[Case]:
    """All variants in both modes for one length, inputs seeded so every run sees the same numbers."""
    torch.manual_seed(0)
    embed_dim = heads * head_dim
    shape = (batch, heads, length, head_dim)
    q, k, v = (torch.randn(shape) for _ in range(3))  # (b, h, t, e) each
    grad_qkv = torch.randn(shape)  # (b, h, t, e)
    x = torch.randn(batch, length, embed_dim)  # (b, t, d)
    grad_x = torch.randn(batch, length, embed_dim)  # (b, t, d)
    modules: dict[str, nn.Module] = {
        "torch_mha": nn.MultiheadAttention(embed_dim, heads, batch_first=True),
        "attnlab_mha": MultiHeadAttention(embed_dim, heads),
    }
    cases = []
    for mode in MODES:
        grad = mode == "forward_backward"
        for variant in CORE_VARIANTS:
            inputs = tuple(t.clone().requires_grad_(grad) for t in (q, k, v))
            cases.append(Case(variant, mode, core_call(variant), inputs, grad_qkv))
        for variant, module in modules.items():
            module.eval()  # no dropout; for nn.MultiheadAttention also its native inference path
            inputs = (x.clone().requires_grad_(grad),)
            cases.append(Case(variant, mode, module_call(module, variant), inputs, grad_x, module.parameters()))
    return cases


def time_length(length: int, batch: int, args: argparse.Namespace) -> list[Case]:
    """Warm every case up, then run `repeats` rounds, each case once per round in a shuffled order."""
    cases = build_cases(length, batch, args.heads, args.head_dim)
    for case in cases:
        for _ in range(args.warmup):
            case.run_once()
    # A fresh random order every round. A fixed order, even rotated, keeps each case behind the same
    # neighbour, and the call after a large backward pays ~3% here (page faults, cold caches): that
    # alone made the fast path look 1.5% slower than SDPA, which it follows in the list.
    rng = np.random.default_rng(length)
    with progress_bar(total=args.repeats, desc=f"t={length} b={batch}", unit="round") as bar:
        for _ in range(args.repeats):
            for n in rng.permutation(len(cases)):
                cases[n].times.append(cases[n].run_once())
            bar.update(1)
    return cases


def summarise(cases: list[Case], length: int, batch: int, args: argparse.Namespace) -> tuple[list[dict], list[dict]]:
    """Per-case rows and the paired throughput ratios of one length."""
    embed_dim = args.heads * args.head_dim
    rows = []
    by_key = {(c.variant, c.mode): np.asarray(c.times) for c in cases}
    for case in cases:
        times = by_key[(case.variant, case.mode)]
        median = float(np.median(times))
        flops = attention_flops(batch, args.heads, length, args.head_dim)
        if case.variant in MODULE_VARIANTS:
            flops += projection_flops(batch, length, embed_dim)
        if case.mode == "forward_backward":
            flops *= 3  # backward ~ 2x forward: the usual FLOP-equivalent convention
        rows.append(
            {
                "length": length,
                "batch": batch,
                "mode": case.mode,
                "variant": case.variant,
                "median_s": median,
                "q25_s": float(np.quantile(times, 0.25)),
                "q75_s": float(np.quantile(times, 0.75)),
                "tokens_per_s": batch * length / median,
                "gflops_equiv": flops / median / 1e9,
                "times_s": [float(t) for t in times],
            }
        )
    ratios = []
    pairs = [("fast", "sdpa"), ("eager", "sdpa"), ("naive", "sdpa"), ("sdpa", "naive"), ("fast", "naive"),
             ("attnlab_mha", "torch_mha")]  # fmt: skip
    for mode in MODES:
        for a, b in pairs:
            if (a, mode) not in by_key or (b, mode) not in by_key:
                continue
            paired = by_key[(b, mode)] / by_key[(a, mode)]  # throughput of a over throughput of b, per round
            lo, hi = bootstrap_median_ci(paired)
            ratios.append(
                {
                    "length": length,
                    "mode": mode,
                    "ratio": f"{a}/{b}",
                    "paired_median": float(np.median(paired)),
                    "ci95": [lo, hi],
                    "of_medians": float(np.median(by_key[(b, mode)]) / np.median(by_key[(a, mode)])),
                }
            )
    return rows, ratios


# ---------------------------------------------------------------- memory, one subprocess per figure


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def memory_child(spec: dict) -> dict:
    """Runs in a fresh interpreter: peak extra resident memory of one forward+backward."""
    variant, length, batch = spec["variant"], spec["length"], spec["batch"]
    heads, head_dim = spec["heads"], spec["head_dim"]
    fn = core_call(variant)
    torch.manual_seed(0)
    small = [torch.randn(1, heads, 16, head_dim, requires_grad=True) for _ in range(3)]  # (1, h, 16, e)
    # Lazy initialisation happens before the baseline. The warm-up must call backward the same way as
    # the measured call: the first backward(grad) alone costs ~37 MiB here (one-off set-up, not attention).
    fn(*small).backward(torch.randn_like(small[0]))
    shape = (batch, heads, length, head_dim)
    q, k, v = (torch.randn(shape, requires_grad=True) for _ in range(3))  # (b, h, t, e) each
    grad_out = torch.randn(shape)  # (b, h, t, e)
    try:
        Path("/proc/self/clear_refs").write_text("5")  # reset the peak to the current resident set
        method = "VmHWM after clear_refs reset, minus VmRSS before the call"
    except OSError:
        method = "ru_maxrss after the call minus VmRSS before it (peak not resettable)"
    before = _status_kib("VmRSS")
    start = time.perf_counter()
    fn(q, k, v).backward(grad_out)
    seconds = time.perf_counter() - start
    if method.startswith("VmHWM"):
        peak = _status_kib("VmHWM")
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    return {
        "variant": variant,
        "length": length,
        "batch": batch,
        "peak_extra_mib": (peak - before) / 1024,
        "inputs_mib": 4 * q.numel() * 4 / 2**20,  # q, k, v and the output gradient
        "scores_mib": batch * heads * length * length * 4 / 2**20,  # one (b, h, t, t) fp32 matrix
        "seconds": seconds,
        "threads": torch.get_num_threads(),
        "method": method,
    }


def measure_memory(lengths: list[int], args: argparse.Namespace) -> list[dict]:
    rows = []
    for length in lengths:
        for variant in MEMORY_VARIANTS:
            spec = {"variant": variant, "length": length, "batch": 1, "heads": args.heads, "head_dim": args.head_dim}
            proc = subprocess.run(
                [sys.executable, __file__, "--memory-child", json.dumps(spec)],
                capture_output=True,
                text=True,
                timeout=args.memory_timeout,
            )
            if proc.returncode != 0:
                print(f"memory t={length} {variant}: failed\n{proc.stderr[-2000:]}", flush=True)
                rows.append({**spec, "error": proc.stderr[-2000:]})
                continue
            row = json.loads(proc.stdout.strip().splitlines()[-1])
            print(
                f"memory t={length:5d} {variant:6s}: peak +{row['peak_extra_mib']:8.1f} MiB "
                f"(one t x t score matrix {row['scores_mib']:.0f} MiB) in {row['seconds']:.2f} s",
                flush=True,
            )
            rows.append(row)
    return rows


# ---------------------------------------------------------------- report


def print_table(rows: list[dict], ratios: list[dict]) -> None:
    sdpa = {(r["length"], r["mode"]): r["median_s"] for r in rows if r["variant"] == "sdpa"}
    print()
    print(f"{'length':>6} {'batch':>5} {'mode':<16} {'variant':<11} {'median ms':>10} {'IQR ms':>15} "
          f"{'tokens/s':>10} {'GFLOP/s eq':>10} {'x SDPA':>7}")  # fmt: skip
    for r in rows:
        iqr = f"{r['q25_s'] * 1e3:.1f}-{r['q75_s'] * 1e3:.1f}"
        rel = sdpa[(r["length"], r["mode"])] / r["median_s"]
        print(f"{r['length']:>6} {r['batch']:>5} {r['mode']:<16} {r['variant']:<11} {r['median_s'] * 1e3:>10.2f} "
              f"{iqr:>15} {r['tokens_per_s']:>10.0f} {r['gflops_equiv']:>10.1f} {rel:>7.3f}")  # fmt: skip
    print()
    print("throughput ratios: median of per-round paired ratios [bootstrap 95% interval]")
    print(f"{'length':>6} {'mode':<16} {'ratio':<22} {'paired median':>13} {'95% interval':>17}")
    for r in ratios:
        lo, hi = r["ci95"]
        print(
            f"{r['length']:>6} {r['mode']:<16} {r['ratio']:<22} {r['paired_median']:>13.3f} {f'{lo:.3f}-{hi:.3f}':>17}"
        )


def print_memory(rows: list[dict]) -> None:
    if not rows:
        return
    print()
    print(f"peak memory of one forward+backward, batch 1, fresh subprocess each ({rows[0].get('method', '')})")
    print(f"{'length':>6} {'variant':<8} {'peak extra MiB':>14} {'t x t matrix MiB':>16} {'q,k,v,grad MiB':>14}")
    for r in rows:
        if "error" in r:
            print(f"{r['length']:>6} {r['variant']:<8} {'failed':>14}")
            continue
        print(f"{r['length']:>6} {r['variant']:<8} {r['peak_extra_mib']:>14.1f} {r['scores_mib']:>16.1f} "
              f"{r['inputs_mib']:>14.1f}")  # fmt: skip


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--lengths", default="128,256,512,1024,2048", help="comma-separated sequence lengths")
    p.add_argument("--batch", type=int, default=None,
                   help=f"batch size at every length; default: max(1, {AUTO_BATCH_TOKENS} // t)")  # fmt: skip
    p.add_argument("--heads", type=int, default=8)
    p.add_argument("--head-dim", type=int, default=64)
    p.add_argument("--repeats", type=int, default=20, help="timed rounds per length (median taken)")
    p.add_argument("--warmup", type=int, default=2, help="untimed calls of each case before timing")
    p.add_argument("--memory-lengths", default="2048,4096", help="lengths for the peak-memory runs ('' for none)")
    p.add_argument("--memory-timeout", type=float, default=300.0, help="seconds per memory subprocess")
    p.add_argument("--out", default=None, help="JSON output (default benchmarks/results/attention.json)")
    p.add_argument("--quick", action="store_true", help="a smoke run: short lengths, few repeats")
    p.add_argument("--memory-child", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.quick:
        args.lengths, args.memory_lengths = "64,128", "256"
        args.repeats, args.warmup = min(args.repeats, 3), 1
        args.batch = args.batch or 2
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.memory_child is not None:
        print(json.dumps(memory_child(json.loads(args.memory_child))))
        return
    started = time.perf_counter()
    info = common.machine(argv)
    print(f"torch {info['torch']} on {info['cpu_model']} ({info['cpu_capability']}), {info['threads']} threads; "
          f"1-min load average {os.getloadavg()[0]:.2f}")  # fmt: skip
    lengths = [int(s) for s in args.lengths.split(",") if s]
    rows, ratios = [], []
    loads: list[dict] = []  # other processes on a 2-core machine distort timings: keep the evidence
    for length in lengths:
        batch = args.batch or max(1, AUTO_BATCH_TOKENS // length)
        t0 = time.perf_counter()
        load_before = os.getloadavg()[0]
        cases = time_length(length, batch, args)
        r, q = summarise(cases, length, batch, args)
        loads.append({"length": length, "before": load_before, "after": os.getloadavg()[0]})
        rows += r
        ratios += q
        fast = next(x for x in q if x["ratio"] == "fast/sdpa" and x["mode"] == "forward")["paired_median"]
        print(f"t={length:5d} b={batch:3d}: {args.repeats} rounds in {time.perf_counter() - t0:5.1f} s; "
              f"forward fast/SDPA {fast:.3f}; 1-min load {load_before:.2f} -> {loads[-1]['after']:.2f}",
              flush=True)  # fmt: skip
    memory_lengths = [int(s) for s in args.memory_lengths.split(",") if s]
    memory = measure_memory(memory_lengths, args)
    print_table(rows, ratios)
    print_memory(memory)
    elapsed = time.perf_counter() - started
    print(f"\ntotal {elapsed:.0f} s")
    result = {
        "machine": info,
        "settings": {
            "lengths": lengths,
            "heads": args.heads,
            "head_dim": args.head_dim,
            "dtype": "float32",
            "repeats": args.repeats,
            "warmup": args.warmup,
            "batch": args.batch if args.batch else f"max(1, {AUTO_BATCH_TOKENS} // t)",
            "timing": "median over rounds; every case once per round, in a seeded random order per round; "
            "forward under torch.no_grad, modules in eval mode",
            "flops": "4*b*h*t^2*e per forward (+8*b*t*d^2 projections for modules); x3 for forward+backward",
            "ratio": "throughput of a / throughput of b = time of b / time of a, median of per-round pairs",
        },
        "timing": rows,
        "ratios": ratios,
        "memory": memory,
        "load_average_1min": loads,
        "elapsed_s": elapsed,
    }
    out = common.write_result(result, "attention-quick.json" if args.quick else "attention.json", args.out)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
