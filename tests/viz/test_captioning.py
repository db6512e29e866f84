"""attnlab.viz.captioning: the image once per word, with that word's attention upsampled over it."""

import pytest
import torch

from attnlab.core import Trace
from attnlab.viz.captioning import attention_over_image, caption_figure, caption_weights, draw_caption


def test_a_word_looking_at_one_cell_lights_that_cell_brightest():
    alpha = torch.zeros(2 * 3)
    alpha[4] = 1.0  # row 1, col 1
    heat = attention_over_image(alpha, (2, 3), (20, 30))  # (20, 30)
    y, x = divmod(int(heat.argmax()), 30)
    assert 10 <= y < 20 and 10 <= x < 20
    with pytest.raises(ValueError, match="do not fill a 3 x 3 grid"):
        attention_over_image(alpha, (3, 3), (20, 30))


def test_caption_weights_read_one_row_per_step_of_one_example():
    trace = Trace()
    for step in range(3):
        trace.record("attention", "cross", torch.full((2, 1, 1, 4), float(step)))  # (b, 1, 1, L)
    alphas = caption_weights(trace, example=1)
    assert alphas.shape == (3, 4) and alphas[:, 0].tolist() == [0.0, 1.0, 2.0]
    with pytest.raises(ValueError, match="no 'cross' records"):
        caption_weights(Trace())


def test_draws_a_panel_per_word_and_marks_sampled_cells(tmp_path):
    image, alphas = torch.rand(3, 28, 42), torch.softmax(torch.randn(3, 6), -1)
    fig = caption_figure(image, ["a", "dog", "<end>"], alphas, (2, 3))
    assert [ax.get_title() for ax in fig.axes][:4] == ["", "a", "dog", "<end>"]
    hard = caption_figure(image[:1], ["a", "dog"], alphas, (2, 3), picks=[0, 5])
    assert sum(len(ax.patches) for ax in hard.axes) == 2  # one outlined cell per word
    path = draw_caption(image, ["a", "dog"], alphas, (2, 3), tmp_path / "c.png")
    assert path.stat().st_size > 1000
    photo = draw_caption(image, ["a", "dog"], alphas, (2, 3), tmp_path / "c.jpg")  # photographs: JPEG, a tenth
    assert photo.read_bytes()[:3] == b"\xff\xd8\xff"
    with pytest.raises(ValueError, match="alphas must be"):
        caption_figure(image, ["a", "dog", "runs", "far"], alphas, (2, 3))
