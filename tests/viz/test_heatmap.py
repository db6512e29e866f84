"""attnlab.viz.heatmap: drawn values, labels, files written, grid layout, trace reading, bad input."""

from __future__ import annotations

import matplotlib.image
import numpy as np
import pytest
import torch
from matplotlib.figure import Figure

from attnlab.core import Trace
from attnlab.viz import MAX_GRID_LABELS, draw_attention, draw_heads, layers_from_trace

DPI = 60
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _weights(*shape: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.softmax(torch.randn(*shape, generator=g), dim=-1)  # rows sum to 1 over j


def _heatmaps(fig: Figure):
    """The axes holding an image of weights (colorbar axes hold none)."""
    return [ax for ax in fig.axes if ax.images and ax.get_label() != "<colorbar>"]


# ---------------------------------------------------------------- draw_attention


def test_image_data_equals_input_tensor():
    w = _weights(3, 5)
    fig = draw_attention(w, dpi=DPI)
    (ax,) = _heatmaps(fig)
    np.testing.assert_array_equal(np.asarray(ax.images[0].get_array()), w.numpy())


def test_image_data_equals_input_array_and_scale_is_zero_to_one():
    w = _weights(4, 4, seed=1).numpy().astype(np.float64)
    fig = draw_attention(w, dpi=DPI)
    image = _heatmaps(fig)[0].images[0]
    np.testing.assert_allclose(np.asarray(image.get_array()), w, rtol=1e-6)
    assert image.get_clim() == (0.0, 1.0)


def test_vmax_none_scales_to_the_data():
    w = _weights(3, 6) * 0.5
    image = _heatmaps(draw_attention(w, vmax=None, dpi=DPI))[0].images[0]
    assert image.get_clim()[1] == pytest.approx(float(w.max()))


def test_tick_labels_equal_tokens_and_columns_are_rotated():
    rows, cols = ["le", "chat", "noir"], ["the", "black", "cat", "sat"]
    fig = draw_attention(_weights(3, 4), rows=rows, cols=cols, title="cross", dpi=DPI)
    ax = _heatmaps(fig)[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == cols
    assert [t.get_text() for t in ax.get_yticklabels()] == rows
    assert all(t.get_rotation() == 90 for t in ax.get_xticklabels())
    assert ax.get_title() == "cross"


def test_has_a_colorbar():
    fig = draw_attention(_weights(2, 3), dpi=DPI)
    assert len(fig.axes) == 2
    assert sum(ax.get_label() == "<colorbar>" for ax in fig.axes) == 1


def test_draws_into_given_axes():
    fig = Figure(dpi=DPI)
    ax = fig.add_subplot()
    w = _weights(2, 2)
    assert draw_attention(w, ax=ax) is fig
    np.testing.assert_array_equal(np.asarray(ax.images[0].get_array()), w.numpy())


def test_writes_png_readable_with_the_figure_aspect(tmp_path):
    path = tmp_path / "deep" / "er" / "map.png"  # parent folders do not exist yet
    fig = draw_attention(_weights(3, 8), rows=list("abc"), cols=list("abcdefgh"), path=path, dpi=DPI)
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE
    assert len(data) > 2000  # a drawn figure, not an empty file
    pixels = matplotlib.image.imread(path)
    width, height = fig.get_size_inches() * DPI
    assert pixels.shape[:2] == (round(height), round(width))
    assert width > height  # 8 keys by 3 queries: the figure is wider than tall
    assert pixels[..., :3].std() > 0.05  # not a blank canvas


def test_writes_svg(tmp_path):
    path = tmp_path / "map.svg"
    draw_attention(_weights(3, 3), rows=["x", "y", "z"], cols=["p", "q", "r"], path=path, dpi=DPI)
    text = path.read_text()
    assert text.lstrip().startswith("<?xml") and "<svg" in text
    assert len(text) > 2000
    assert "<!-- q -->" in text and "<!-- z -->" in text  # matplotlib marks each glyph run with its text


@pytest.mark.parametrize("shape", [(4,), (2, 3, 4), ()])
def test_not_2d_raises_with_shape(shape):
    with pytest.raises(ValueError, match=r"weights must be 2-D \(i, j\); got shape"):
        draw_attention(torch.zeros(shape))


def test_wrong_label_counts_raise_with_expected_and_actual():
    w = _weights(3, 4)
    with pytest.raises(ValueError, match=r"rows .*expected 3, got 2"):
        draw_attention(w, rows=["a", "b"])
    with pytest.raises(ValueError, match=r"cols .*expected 4, got 5"):
        draw_attention(w, cols=list("abcde"))


def test_unknown_suffix_raises(tmp_path):
    with pytest.raises(ValueError, match=r"path must end in"):
        draw_attention(_weights(2, 2), path=tmp_path / "map.jpg")
    assert not (tmp_path / "map.jpg").exists()


# ---------------------------------------------------------------- draw_heads


def test_heads_grid_has_layers_times_heads_axes_with_titles():
    layers = [_weights(3, 5, 5, seed=n) for n in range(2)]  # L = 2 of (h = 3, i, j)
    fig = draw_heads(layers, dpi=DPI)
    maps = _heatmaps(fig)
    assert len(maps) == 2 * 3
    assert len(fig.axes) == 2 * 3 + 1  # one shared colorbar
    assert [ax.get_title() for ax in maps[:3]] == ["head 0", "head 1", "head 2"]
    assert [maps[r * 3].get_ylabel() for r in range(2)] == ["layer 0", "layer 1"]
    for n, ax in enumerate(maps):
        layer, head = divmod(n, 3)
        np.testing.assert_array_equal(np.asarray(ax.images[0].get_array()), layers[layer][head].numpy())
        assert ax.images[0].get_clim() == (0.0, 1.0)


def test_heads_accepts_one_4d_tensor_and_shares_an_auto_scale():
    stacked = _weights(3, 2, 4, 4) * torch.tensor([0.2, 0.5, 0.9])[:, None, None, None]  # (L, h, i, j)
    fig = draw_heads(stacked, vmax=None, dpi=DPI)
    maps = _heatmaps(fig)
    assert len(maps) == 3 * 2
    top = float(stacked.max())
    assert top < 0.9  # the automatic scale is the data's, not the default 1
    assert all(ax.images[0].get_clim() == (0.0, pytest.approx(top)) for ax in maps)


def test_heads_tokens_on_outer_axes_only():
    tokens = ["a", "b", "c", "d"]
    fig = draw_heads([_weights(2, 4, 4), _weights(2, 4, 4, seed=1)], tokens=tokens, dpi=DPI)
    maps = _heatmaps(fig)  # row-major (layer, head)
    labels = lambda ticks: [t.get_text() for t in ticks]
    assert labels(maps[2].get_xticklabels()) == tokens and labels(maps[3].get_xticklabels()) == tokens
    assert labels(maps[0].get_yticklabels()) == tokens and labels(maps[2].get_yticklabels()) == tokens
    assert maps[0].get_xticks().size == 0 and maps[1].get_xticks().size == 0  # top row: no key labels
    assert maps[1].get_yticks().size == 0 and maps[3].get_yticks().size == 0  # inner column: none


def test_heads_query_tokens_label_rows():
    fig = draw_heads([_weights(1, 2, 3)], tokens=["x", "y", "z"], query_tokens=["p", "q"], dpi=DPI)
    ax = _heatmaps(fig)[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["p", "q"]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["x", "y", "z"]


def test_heads_long_sequences_turn_ticks_off():
    n = MAX_GRID_LABELS + 1
    fig = draw_heads([_weights(1, n, n)], tokens=[f"t{k}" for k in range(n)], dpi=DPI)
    ax = _heatmaps(fig)[0]
    assert ax.get_xticks().size == 0 and ax.get_yticks().size == 0


def test_heads_writes_png_and_svg(tmp_path):
    layers = [_weights(2, 3, 3)]
    draw_heads(layers, tokens=["a", "b", "c"], title="self", path=tmp_path / "png" / "heads.png", dpi=DPI)
    draw_heads(layers, path=tmp_path / "heads.svg", dpi=DPI)
    png = (tmp_path / "png" / "heads.png").read_bytes()
    assert png[:8] == PNG_SIGNATURE and len(png) > 2000
    assert "<svg" in (tmp_path / "heads.svg").read_text()


def test_heads_bad_input_raises():
    with pytest.raises(ValueError, match=r"layers\[0\] must be 3-D \(h, i, j\); got shape \(4, 4\)"):
        draw_heads([torch.zeros(4, 4)])
    with pytest.raises(ValueError, match=r"layers\[1\] must have the 2 heads of layers\[0\]"):
        draw_heads([torch.zeros(2, 3, 3), torch.zeros(3, 3, 3)])
    with pytest.raises(ValueError, match=r"4-D \(L, h, i, j\)"):
        draw_heads(torch.zeros(2, 3, 3))
    with pytest.raises(ValueError, match=r"empty"):
        draw_heads([])
    with pytest.raises(ValueError, match=r"tokens .*expected 3, got 2"):
        draw_heads([torch.zeros(1, 3, 3)], tokens=["a", "b"])
    with pytest.raises(ValueError, match=r"query_tokens .*expected 2, got 3"):
        draw_heads([torch.zeros(1, 2, 3)], tokens=["a", "b", "c"])  # query_tokens defaults to tokens


# ---------------------------------------------------------------- layers_from_trace


def _trace() -> tuple[Trace, dict[str, list[torch.Tensor]]]:
    """Two self-attention layers (the first called twice), one cross layer, one memory read."""
    trace = Trace()
    w = {
        "layers.0": [_weights(2, 2, 3, 3, seed=0), _weights(2, 2, 3, 3, seed=1)],
        "layers.1": [_weights(2, 2, 3, 3, seed=2)],
        "cross": [_weights(2, 2, 3, 5, seed=3)],
    }
    trace.record("layers.0", "self", w["layers.0"][0])
    trace.record("cross", "cross", w["cross"][0])
    trace.record("layers.1", "self", w["layers.1"][0])
    trace.record("memory", "read", torch.rand(2, 7))  # (b, j): not per head
    trace.record("layers.0", "self", w["layers.0"][1])
    return trace, w


def test_layers_from_trace_picks_kind_in_path_order_last_step_and_example():
    trace, w = _trace()
    layers = layers_from_trace(trace, kind="self", example=1)
    assert len(layers) == 2
    torch.testing.assert_close(layers[0], w["layers.0"][1][1], rtol=0, atol=0)  # last step of layers.0
    torch.testing.assert_close(layers[1], w["layers.1"][0][1], rtol=0, atol=0)
    assert all(t.device.type == "cpu" and t.shape == (2, 3, 3) for t in layers)


def test_layers_from_trace_step_and_kind():
    trace, w = _trace()
    (first,) = layers_from_trace(trace, kind="self", step=0)[:1]
    torch.testing.assert_close(first, w["layers.0"][0][0], rtol=0, atol=0)
    (cross,) = layers_from_trace(trace, kind="cross")
    torch.testing.assert_close(cross, w["cross"][0][0], rtol=0, atol=0)


def test_layers_from_trace_feeds_draw_heads():
    trace, _ = _trace()
    assert len(_heatmaps(draw_heads(layers_from_trace(trace), tokens=list("abc"), dpi=DPI))) == 2 * 2


def test_layers_from_trace_missing_kind_lists_recorded_kinds():
    trace, _ = _trace()
    with pytest.raises(ValueError, match=r"no records of kind 'glimpse'; the kinds recorded were \['self', 'cross', 'read'\]"):
        layers_from_trace(trace, kind="glimpse")
    with pytest.raises(ValueError, match=r"nothing was recorded"):
        layers_from_trace(Trace())


def test_layers_from_trace_bad_example_step_or_shape():
    trace, _ = _trace()
    with pytest.raises(ValueError, match=r"example must index the batch of 2"):
        layers_from_trace(trace, example=2)
    with pytest.raises(ValueError, match=r"step must index the 1 calls recorded at 'layers.1'"):
        layers_from_trace(trace, step=1)
    with pytest.raises(ValueError, match=r"must be \(b, h, i, j\); got shape \(2, 7\)"):
        layers_from_trace(trace, kind="read")


def test_draw_sentence_attention_writes_the_grid_and_the_selected_head(tmp_path):
    from attnlab.pretrained import SentenceAttention
    from attnlab.viz.heatmap import draw_sentence_attention

    tokens = ["[CLS]", "the", "cat", "sat", "[SEP]"]
    weights = torch.softmax(torch.randn(2, 3, 5, 5, generator=torch.Generator().manual_seed(0)), dim=-1)
    att = SentenceAttention("the cat sat", tokens, weights, "random")
    paths = draw_sentence_attention(att, tmp_path, layer=1, head=2)
    assert [p.name for p in paths] == ["attention_heads.png", "attention_layer1_head2.png"]
    assert all(p.stat().st_size > 1000 for p in paths)
    assert [p.name for p in draw_sentence_attention(att, tmp_path / "grid")] == ["attention_heads.png"]
    with pytest.raises(ValueError, match=r"head must be in 0\.\.2; got 3"):
        draw_sentence_attention(att, tmp_path, head=3)
