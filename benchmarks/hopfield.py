"""Retrieval capacity of the modern Hopfield update against the classical Hopfield network.

N random +-1 patterns of dimension d = 64 are stored; each of `--queries` queries is a stored
pattern with a fraction of its signs flipped. A query counts as retrieved when the network's
output, after sign(), equals the stored pattern in every entry. Methods:

    modern beta=1/sqrt(d)   one update xi <- X^T softmax(beta X xi) (Ramsauer et al. 2020, eq. 3)
                            at the scale a transformer uses: the logits beta X xi then have
                            crosstalk of std 1 from every other pattern, so the softmax mixes in
                            many patterns once N is large and the retrieved vector is a blend
    modern beta=1           the same update with beta = 1 (the logits are the raw overlaps): the
                            query's own overlap d(1 - 2p) against the largest crosstalk, about
                            sqrt(2 d ln N), decides; at p <= 0.2 it wins by tens of logits up to
                            N = 1024, so the softmax is nearly one-hot
    classical               Hopfield 1982: W = sum_mu x_mu x_mu^T / d, zero diagonal; synchronous
                            s <- sign(W s) (a zero field keeps the old sign) until nothing changes
                            or 10 iterations; capacity about 0.14 d

Every method sees the same patterns and the same queries.

    python benchmarks/hopfield.py     # writes benchmarks/results/hopfield.json and the figure (seconds)
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import torch
from torch import Tensor

import common
from attnlab.memory.hopfield import hopfield_update

NUM_PATTERNS = (8, 16, 32, 64, 128, 256, 512, 1024)
NOISE = (0.1, 0.2, 0.3, 0.4)


def classical_retrieve(queries: Tensor, patterns: Tensor, iterations: int = 10) -> Tensor:
    """Synchronous sign updates of a Hebbian Hopfield network. queries (q, d), patterns (N, d) -> (q, d)."""
    d = patterns.shape[1]
    weights = patterns.t() @ patterns / d  # (d, d)
    weights.fill_diagonal_(0.0)
    state = queries.clone()
    for _ in range(iterations):
        field = state @ weights  # (q, d); W is symmetric
        new = torch.where(field == 0, state, field.sign())
        if torch.equal(new, state):
            break
        state = new
    return state


def noisy_queries(patterns: Tensor, count: int, noise: float, gen: torch.Generator) -> tuple[Tensor, Tensor]:
    """`count` stored patterns with round(noise * d) signs flipped. Returns queries (q, d) and targets (q, d)."""
    n, d = patterns.shape
    targets = patterns[torch.randint(0, n, (count,), generator=gen)]  # (q, d)
    flips = torch.rand(count, d, generator=gen).argsort(-1)[:, : round(noise * d)]  # (q, f)
    queries = targets.clone()
    queries.scatter_(-1, flips, -targets.gather(-1, flips))
    return queries, targets


def run(dim: int, num_queries: int, seed: int) -> tuple[list[dict], dict[str, float | None]]:
    """Accuracy of every method at every N and noise level."""
    gen = torch.Generator().manual_seed(seed)
    methods = {
        "modern beta=1/sqrt(d)": lambda q, x: hopfield_update(q[None], x[None], 1 / math.sqrt(dim))[0],
        "modern beta=1": lambda q, x: hopfield_update(q[None], x[None], 1.0)[0],
        "classical": classical_retrieve,
    }
    betas = {"modern beta=1/sqrt(d)": 1 / math.sqrt(dim), "modern beta=1": 1.0, "classical": None}
    rows = []
    for n in NUM_PATTERNS:
        patterns = torch.randint(0, 2, (n, dim), generator=gen).double() * 2 - 1  # (N, d)
        for noise in NOISE:
            queries, targets = noisy_queries(patterns, num_queries, noise, gen)
            for name, retrieve in methods.items():
                out = retrieve(queries, patterns).sign()  # (q, d)
                accuracy = (out == targets).all(-1).double().mean().item()
                rows.append({"method": name, "noise": noise, "num_patterns": n, "accuracy": accuracy})
    return rows, betas


def table(rows: list[dict]) -> str:
    """Methods x noise down, N across."""
    head = f"{'method':<24}{'noise':>6}" + "".join(f"{n:>7}" for n in NUM_PATTERNS)
    lines = [head, "-" * len(head)]
    for method in dict.fromkeys(r["method"] for r in rows):
        for noise in NOISE:
            acc = {r["num_patterns"]: r["accuracy"] for r in rows if r["method"] == method and r["noise"] == noise}
            lines.append(f"{method:<24}{noise:>6.1f}" + "".join(f"{acc[n]:>7.3f}" for n in NUM_PATTERNS))
    return "\n".join(lines)


def draw(rows: list[dict], dim: int, path: Path) -> None:
    """Accuracy against N, one panel per noise level, one line per method."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(NOISE), figsize=(4 * len(NOISE), 3.4), sharey=True)
    styles = {"modern beta=1/sqrt(d)": "s--", "modern beta=1": "o-", "classical": "^:"}
    for ax, noise in zip(axes, NOISE):
        for method, style in styles.items():
            sel = [r for r in rows if r["method"] == method and r["noise"] == noise]
            ax.plot([r["num_patterns"] for r in sel], [r["accuracy"] for r in sel], style, label=method)
        ax.axvline(0.14 * dim, color="grey", lw=0.8)
        ax.set_xscale("log", base=2)
        ax.set_title(f"{noise:.0%} of signs flipped")
        ax.set_xlabel("stored patterns N")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("exact retrieval (fraction)")
    axes[-1].legend(fontsize=8, loc="upper right")
    fig.suptitle(f"Retrieval of random +-1 patterns, d = {dim}: modern one update, classical up to 10 (grey: 0.14 d)")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=None, help="JSON results (default benchmarks/results/hopfield.json)")
    parser.add_argument("--figure", default=str(common.FIGURES / "hopfield-retrieval.png"), help="PNG figure")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--dim", type=int, default=64, help="d, the pattern dimension")
    parser.add_argument("--queries", type=int, default=200, help="queries per N and noise level")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    rows, betas = run(args.dim, args.queries, args.seed)
    seconds = time.perf_counter() - start
    print(table(rows))
    meta = common.machine(argv)
    result = {
        "command": meta["command"],
        "torch": meta["torch"],
        "seed": args.seed,
        "dim": args.dim,
        "queries": args.queries,
        "betas": betas,
        "classical": "Hebbian W = sum x x^T / d, zero diagonal; synchronous sign updates, at most 10",
        "accuracy": "fraction of queries whose output, after sign(), equals the stored pattern",
        "seconds": round(seconds, 2),
        "results": rows,
        "machine": meta,
    }
    out = common.write_result(result, "hopfield.json", args.out)
    draw(rows, args.dim, Path(args.figure))
    print(f"wrote {out} and {args.figure} in {seconds:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
