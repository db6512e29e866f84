"""The spatial view of image models that attend over a feature map (kind "spatial", e.g. soft_attention).

Each record holds weights (b, h, 1, y' * x') over the cells of the CNN's feature map in row-major
order and `grid=(y', x')`; reshaped they lay on the map, and the page lays the map over the
image: cell (r, c) covers the image's rows r * y / y' .. (r + 1) * y / y' and columns likewise.
"""

from __future__ import annotations

from typing import Any

from attnlab.explorer.discovery import ExplorerError
from attnlab.explorer.loaded import LoadedRun
from attnlab.explorer.params import Params
from attnlab.explorer.views import View
from attnlab.explorer.views.common import picked, rounded
from attnlab.explorer.views.glimpse import MAX_PIXELS


def applies(loaded: LoadedRun) -> bool:
    return "spatial" in loaded.kinds and len(loaded.task.spec.image) == 3


def data(loaded: LoadedRun, params: Params) -> dict[str, Any]:
    """{"example", "image": (c, y, x), "grid": [y', x'], "layers": (L, h, y', x') one per recording
    module, "label", "predicted"}."""
    k, batch, rows = picked(loaded, params)
    c, y, x = loaded.task.spec.image
    if c * y * x > MAX_PIXELS:
        raise ExplorerError(413, f"example: images of {c}x{y}x{x} are larger than the page takes ({MAX_PIXELS} values)")
    seen, _ = loaded.traced(batch, rows)
    records = seen.trace.select(kind="spatial")
    grid = tuple(int(v) for v in records[0].extra["grid"])
    layers = [r.weights[0, :, 0].reshape(-1, *grid) for r in records]  # L x (h, y', x')
    return {
        "view": "spatial",
        "example": k,
        "image": rounded(batch.inputs[0].float(), 3),  # (c, y, x)
        "grid": list(grid),
        "paths": [r.path for r in records],
        "layers": [rounded(w) for w in layers],
        "label": int(batch.targets[0, 0]),
        "predicted": int(seen.logits[0, 0].argmax()),
    }


VIEW = View("spatial", "attention over the image", applies, data)
