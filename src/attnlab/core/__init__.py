"""The one attention core: score functions, masks, the weighted sum, and tracing.

Shape legend used in comments across attnlab:

    b  batch                    h  heads (query heads; hk = key/value heads)
    i  queries                  j  keys, memory slots or positions attended over
    e  head dim (query/key)     f  value head dim
    d  model dim                t  time steps of a recurrent model
    g  glimpses                 c, y, x  image channels, rows, columns

Everything here imports torch only.
"""

from attnlab.core.attend import AttendOutput, attend, why_not_fast_path
from attnlab.core.masks import (
    causal_mask,
    combine_masks,
    from_torch_mask,
    key_mask,
    padding_mask,
)
from attnlab.core.scores import SCORES, additive, cosine, dot, general, scaled_dot
from attnlab.core.trace import Trace, Traced, TraceRecord, capture

__all__ = [
    "SCORES",
    "AttendOutput",
    "Trace",
    "TraceRecord",
    "Traced",
    "additive",
    "attend",
    "capture",
    "causal_mask",
    "combine_masks",
    "cosine",
    "dot",
    "from_torch_mask",
    "general",
    "key_mask",
    "padding_mask",
    "scaled_dot",
    "why_not_fast_path",
]
