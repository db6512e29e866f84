import pytest
import torch

from attnlab.tasks.translation_eval import Alignment
from attnlab.viz.translation import draw_alignment, draw_alignments


def make(layers: int, heads: int) -> Alignment:
    weights = [torch.softmax(torch.randn(heads, 4, 3), -1) for _ in range(layers)]
    return Alignment(weights, ["a", "b", "c"], ["x", "y", "z", "</s>"], "x y z")


def test_draws_one_panel_per_layer(tmp_path):
    path = draw_alignments({"rnn": make(1, 1), "transformer": make(2, 4)}, tmp_path / "a.png", title="t")
    assert path.is_file() and path.stat().st_size > 1000
    assert draw_alignment(make(1, 1), tmp_path / "b.svg").read_text().startswith("<?xml")


def test_nothing_to_draw_is_an_error(tmp_path):
    with pytest.raises(ValueError, match="no cross-attention"):
        draw_alignments({}, tmp_path / "c.png")
