"""The recurrent-attention view: one test image and the path of glimpses over it.

Locations come from `attnlab.viz.glimpse.glimpse_paths`; the pixel each one points at is
`attnlab.glimpse.retina.pixel_centres`, the retina's own mapping, so a square drawn at a centre
with the side of a scale covers the pixels that scale's patch read (sides g * scale_factor**s).
"""

from __future__ import annotations

from typing import Any

from attnlab.explorer.discovery import ExplorerError
from attnlab.explorer.loaded import LoadedRun
from attnlab.explorer.params import Params
from attnlab.explorer.views import View
from attnlab.explorer.views.common import picked, rounded
from attnlab.glimpse.retina import pixel_centres
from attnlab.viz.glimpse import glimpse_paths

MAX_PIXELS = 3 * 256 * 256  # c * y * x of an image sent to the page


def applies(loaded: LoadedRun) -> bool:
    return "glimpse" in loaded.kinds and len(loaded.task.spec.image) == 3


def data(loaded: LoadedRun, params: Params) -> dict[str, Any]:
    """{"example", "image": (c, y, x), "locations": (g, 2) in [-1, 1], "centres": (g, 2) pixels,
    "sides": one per scale, "label", "predicted", "box": (top, left, height, width) or None}."""
    k, batch, rows = picked(loaded, params)
    c, y, x = loaded.task.spec.image
    if c * y * x > MAX_PIXELS:
        raise ExplorerError(413, f"example: images of {c}x{y}x{x} are larger than the page takes ({MAX_PIXELS} values)")
    seen, _ = loaded.traced(batch, rows)
    locations, meta = glimpse_paths(seen.trace)  # (1, g, 2)
    centres = pixel_centres(locations.float(), y, x)  # (1, g, 2)
    boxes = loaded.task.boxes("test") if hasattr(loaded.task, "boxes") else None
    return {
        "view": "glimpse",
        "example": k,
        "image": rounded(batch.inputs[0].float(), 3),  # (c, y, x)
        "locations": rounded(locations[0]),
        "centres": centres[0].tolist(),
        "sides": [meta["glimpse_size"] * meta["scale_factor"] ** s for s in range(meta["num_scales"])],
        "glimpses": int(locations.shape[1]),
        "label": int(batch.targets[0, 0]),
        "predicted": int(seen.logits[0, 0].argmax()),
        "box": None if boxes is None else [int(v) for v in boxes[k].tolist()],
    }


VIEW = View("glimpse", "glimpses", applies, data)
