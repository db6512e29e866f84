"""The tour's first section: one attention core, whose fused fast path and eager path agree.

`attnlab.core.attend` runs `F.scaled_dot_product_attention` when no weights are asked for and
the score allows it, and an eager softmax otherwise; `why_not_fast_path` says why a call is eager.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from attnlab.core import attend, causal_mask, why_not_fast_path
from attnlab.tour import report
from attnlab.tour.budget import Budget

NAME = "core"
TITLE = "One attention core"


def run(out: Path, budget: Budget, seed: int) -> dict[str, Any]:
    """Compare the two paths on fixed random inputs (no training: `out`, `budget` and `seed` are unused).

    Returns:
        fast_vs_eager_max_abs_diff, weights_rows_sum_to_one, future_weight (the largest weight on a
        future key under the causal mask) and why_not_fast_path (call -> reason).
    """
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(2, 4, 16, 32, generator=g) for _ in range(3))  # (b, h, i, e)
    fast = attend(q, k, v, causal=True).out
    eager, weights = attend(q, k, v, causal=True, need_weights=True)  # (b, h, i, e), (b, h, i, j)
    assert weights is not None  # asked for
    return {
        "fast_vs_eager_max_abs_diff": float((fast - eager).abs().max()),
        "weights_rows_sum_to_one": bool(torch.allclose(weights.sum(-1), torch.ones(2, 4, 16))),
        "future_weight": float(weights.masked_select(~causal_mask(16)).abs().max()),
        "why_not_fast_path": {
            "scaled_dot": why_not_fast_path() or "on the fast path",
            "need_weights": why_not_fast_path(need_weights=True),
            "additive": why_not_fast_path(score="additive"),
        },
    }


def render(result: dict[str, Any]) -> str:
    """The agreement, and each call's path."""
    return report.paragraph(
        "Fused kernel and eager path agree to {diff:.2e} (max abs difference); weights sum to one: {rows}; "
        "largest weight on a future key under the causal mask: {future}.",
        diff=result["fast_vs_eager_max_abs_diff"],
        rows=result["weights_rows_sum_to_one"],
        future=result["future_weight"],
    ) + report.table(["call", "path"], result["why_not_fast_path"].items())
