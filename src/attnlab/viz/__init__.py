"""Drawing: attention heatmaps of one matrix, grids of layers x heads, traces turned into layers,
and comparison curves.

    with capture(model) as trace:
        model(x)
    draw_heads(layers_from_trace(trace, kind="self"), tokens=tokens, path="runs/heads.png")

Everything here reads tensors and traces only; figures are plain `matplotlib.figure.Figure`s
(no pyplot state, no window).
"""

from attnlab.viz.curves import draw_comparison, draw_curve_panels, draw_curves
from attnlab.viz.heatmap import MAX_GRID_LABELS, draw_attention, draw_heads, layers_from_trace

__all__ = [
    "MAX_GRID_LABELS",
    "draw_attention",
    "draw_comparison",
    "draw_curve_panels",
    "draw_curves",
    "draw_heads",
    "layers_from_trace",
]
