"""attnlab.viz.probes: every figure is drawn, saved by suffix, and refuses inputs of the wrong shape."""

import numpy as np
import pytest
import torch
from matplotlib.colors import to_hex

from attnlab.viz.probes import (
    ANSWER,
    CANDIDATE,
    OTHER,
    draw_head_grids,
    draw_layer_curves,
    draw_projections,
    draw_token_bars,
)


def test_token_bars_colour_the_candidates_and_the_answer(tmp_path):
    rows = [(["the", "cat", "sat", "it"], torch.tensor([0.1, 0.5, 0.2, 0.2])), (["a", "b"], np.array([0.3, 0.7]))]
    fig = draw_token_bars(rows, titles=["one", "two"], highlight=[[1, 2], [0]], answers=[1, None],
                          title="t", path=tmp_path / "bars.png")
    assert len(fig.axes) == 2 and (tmp_path / "bars.png").stat().st_size > 1000
    colours = [to_hex(p.get_facecolor()) for p in fig.axes[0].patches]
    assert colours == [to_hex(c) for c in (OTHER, ANSWER, CANDIDATE, OTHER)]
    assert [p.get_height() for p in fig.axes[1].patches] == pytest.approx([0.3, 0.7])
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == ["the", "cat", "sat", "it"]
    draw_token_bars(rows[:1], path=tmp_path / "bars.svg")
    assert (tmp_path / "bars.svg").read_text().lstrip().startswith("<?xml")


def test_token_bars_refuse_mismatched_inputs(tmp_path):
    with pytest.raises(ValueError, match=r"rows\[0\] needs one weight per token: 3 tokens"):
        draw_token_bars([(["a", "b", "c"], torch.ones(2))])
    with pytest.raises(ValueError, match="titles must have one entry per row"):
        draw_token_bars([(["a"], torch.ones(1))], titles=["x", "y"])
    with pytest.raises(ValueError, match="path must end in one of"):
        draw_token_bars([(["a"], torch.ones(1))], path=tmp_path / "x.jpg")


def test_head_grids_show_each_grid_and_mark_the_head(tmp_path):
    grids = {"selection": [[0.5, 0.6], [0.7, 0.4], [0.5, 0.5]], "held-out": torch.rand(3, 2)}
    fig = draw_head_grids(grids, mark=(1, 0), path=tmp_path / "grid.png")
    assert len(fig.axes) == 3  # two grids and the colorbar
    assert np.allclose(fig.axes[0].images[0].get_array(), np.array(grids["selection"]))
    assert fig.axes[0].collections[0].get_offsets().tolist() == [[0.0, 1.0]]  # (head, layer)
    assert (tmp_path / "grid.png").stat().st_size > 1000
    with pytest.raises(ValueError, match="grid 'x' must be 2-D"):
        draw_head_grids({"x": [0.5, 0.6]})


def test_layer_curves_draw_series_references_and_chance(tmp_path):
    fig = draw_layer_curves({"a": [0.5, 0.6, 0.9], "b": [0.5, 0.55, 0.7]}, references={"bag": 0.8},
                            ylim=(0.3, 1.0), path=tmp_path / "curves.png")
    (ax,) = fig.axes
    lines = {line.get_label(): list(line.get_ydata()) for line in ax.get_lines()}
    assert lines["a"] == [0.5, 0.6, 0.9] and lines["bag"] == [0.8, 0.8] and lines["chance"] == [0.5, 0.5]
    assert ax.get_ylim() == (0.3, 1.0) and (tmp_path / "curves.png").stat().st_size > 1000
    bare = draw_layer_curves({"a": [1.0]}, chance=None)
    assert "chance" not in {line.get_label() for line in bare.axes[0].get_lines()}


def test_projections_grid_one_marker_per_group(tmp_path):
    g = torch.Generator().manual_seed(0)
    points = [[torch.randn(4, 2, generator=g) for _ in range(3)], [torch.randn(2, 2, generator=g) for _ in range(3)]]
    groups = [["bank (river)", "bank (money)", "bank (river)", "bank (money)"], ["bat (club)", "bat (animal)"]]
    fig = draw_projections(points, groups, col_titles=["layer 0", "layer 3", "layer 6"], path=tmp_path / "p.png")
    assert len(fig.axes) == 6 and (tmp_path / "p.png").stat().st_size > 1000
    first = fig.axes[0]
    assert [len(c.get_offsets()) for c in first.collections] == [2, 2]
    assert first.get_title() == "layer 0"
    assert [t.get_text() for t in fig.axes[2].get_legend().get_texts()] == ["bank (river)", "bank (money)"]
    with pytest.raises(ValueError, match=r"points\[1\]\[0\] must be \(3, 2\)"):
        draw_projections(points, [groups[0], ["a", "b", "c"]])
