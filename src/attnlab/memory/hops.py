"""The hop weights of a memory network, read back from a trace (`attnlab.core.capture`).

MemN2N and KV-MemNN record each hop's weights over the memory slots as kind "memory" with the hop
index in `extra["hop"]`, one (b, 1, 1, m) tensor per hop and call. `hop_weights` stacks them into
(b, K, m): row i, column k is p_i of hop k (eq. 1 of Sukhbaatar et al. 2015; the key addressing
of Miller et al. 2016). In MemN2N's linear-start phase they are the raw scores u^T m_i.
"""

from __future__ import annotations

import torch
from torch import Tensor

from attnlab.core import Trace


def hop_weights(trace: Trace, path: str | None = None) -> Tensor:
    """Every hop's weights over the memory slots, calls of the same module joined along the batch.

    Args:
        trace: a trace of one or more forward calls of a memory network.
        path: the recording module's path; default the first one that recorded kind "memory".
    Returns:
        (b, K, m) weights: K hops, m memory slots (b summed over the calls).
    Raises:
        ValueError: the trace holds no "memory" records.
    """
    records = trace.select(kind="memory")
    if not records:
        raise ValueError(f"trace: no kind 'memory' records; recorded paths: {trace.paths()}")
    path = records[0].path if path is None else path
    calls: list[list[Tensor]] = []
    for record in (r for r in records if r.path == path):
        if record.extra.get("hop", 0) == 0:
            calls.append([])  # hop 0 opens a new forward call
        calls[-1].append(record.weights[:, 0, 0])  # (b, m)
    return torch.cat([torch.stack(hops, 1) for hops in calls])  # (b, K, m)
