"""Translated and cluttered canvases: determinism, boxes, max-combining, distractor counts, a naive loop."""

import pytest
import torch

from attnlab.data.canvas import clutter, translate


def digits(k: int, seed: int = 0) -> torch.Tensor:
    """(k, 28, 28) uint8 random digits with every pixel inked (so a box's crop is all digit)."""
    return torch.randint(1, 256, (k, 28, 28), generator=torch.Generator().manual_seed(seed), dtype=torch.uint8)


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def crop(canvas: torch.Tensor, box: torch.Tensor) -> torch.Tensor:
    top, left, height, width = box.tolist()
    return canvas[top : top + height, left : left + width]


def test_translate_shapes_boxes_and_values():
    d = digits(50)
    canvas, boxes = translate(d, 60, gen(0))
    assert canvas.shape == (50, 60, 60) and canvas.dtype == torch.float32
    assert boxes.shape == (50, 4) and boxes.dtype == torch.long
    assert (boxes[:, 2:] == 28).all() and (boxes[:, :2] >= 0).all() and (boxes[:, :2] + 28 <= 60).all()
    for i in range(50):
        torch.testing.assert_close(crop(canvas[i], boxes[i]), d[i].float() / 255, rtol=0, atol=0)
        outside = canvas[i].clone()
        top, left = boxes[i, :2].tolist()
        outside[top : top + 28, left : left + 28] = 0
        assert outside.abs().sum() == 0  # nothing but the digit on the canvas
    assert canvas.min() >= 0 and canvas.max() <= 1


def test_translate_positions_cover_the_canvas():
    _, boxes = translate(digits(2000), 40, gen(3))
    corners = boxes[:, :2]
    assert corners.min() == 0 and corners.max() == 40 - 28  # both extremes reached: fully inside, uniform range
    assert set(corners[:, 0].tolist()) == set(range(13))


def test_translate_accepts_float_digits_and_equal_size():
    d = digits(4).float() / 255
    canvas, boxes = translate(d, 28, gen(0))
    assert (boxes[:, :2] == 0).all()
    torch.testing.assert_close(canvas, d)


def test_determinism():
    d, pool = digits(20), digits(30, seed=1)
    a = clutter(d, pool, 60, 4, generator=gen(5))
    b = clutter(d, pool, 60, 4, generator=gen(5))
    c = clutter(d, pool, 60, 4, generator=gen(6))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[0], c[0]) and not torch.equal(a[1], c[1])
    t1, t2 = translate(d, 60, gen(5)), translate(d, 60, gen(6))
    assert not torch.equal(t1[1], t2[1])


def test_clutter_keeps_the_digit_and_adds_ink():
    d, pool = digits(40), digits(40, seed=1)
    plain, plain_boxes = translate(d, 60, gen(2))
    cluttered, boxes = clutter(d, pool, 60, 4, generator=gen(2))
    assert torch.equal(boxes, plain_boxes)  # the digit's corner is drawn first, as in translate
    assert (cluttered >= plain).all()  # max-combine: a distractor never erases the digit
    for i in range(40):
        assert (crop(cluttered[i], boxes[i]) >= d[i].float() / 255).all()
    assert cluttered.sum() > plain.sum()
    assert ((cluttered > 0).sum((1, 2)) > (plain > 0).sum((1, 2))).float().mean() > 0.9


def test_clutter_matches_a_naive_loop():
    """Re-draw clutter's random numbers in its documented order and paste piece by piece."""
    k, m, size, d, piece = 5, 7, 50, 6, 8
    digit, pool = digits(k), digits(m, seed=4)
    canvas, boxes = clutter(digit, pool, size, d, piece, generator=gen(9))
    g = gen(9)
    corner = torch.randint(0, size - 28 + 1, (k, 2), generator=g)
    source = torch.randint(0, m, (k, d), generator=g)
    cut = torch.randint(0, 28 - piece + 1, (k, d, 2), generator=g)
    place = torch.randint(0, size - piece + 1, (k, d, 2), generator=g)
    expected = torch.zeros(k, size, size)
    for i in range(k):
        r, c = corner[i].tolist()
        expected[i, r : r + 28, c : c + 28] = digit[i].float() / 255
        for j in range(d):
            (a, b), (p, q) = cut[i, j].tolist(), place[i, j].tolist()
            patch = pool[source[i, j], a : a + piece, b : b + piece].float() / 255
            region = expected[i, p : p + piece, q : q + piece]
            expected[i, p : p + piece, q : q + piece] = torch.maximum(region, patch)
    torch.testing.assert_close(canvas, expected, rtol=0, atol=0)
    assert torch.equal(boxes[:, :2], corner)


def test_distractor_count_is_respected():
    """A blank digit and a fully inked pool: each piece pastes one 8x8 square of 1.0."""
    k, size, piece = 30, 100, 8
    blank = torch.zeros(k, 28, 28, dtype=torch.uint8)
    pool = torch.full((1, 28, 28), 255, dtype=torch.uint8)
    for count in (0, 1, 3, 8):
        canvas, _ = clutter(blank, pool, size, count, piece, generator=gen(count))
        ink = (canvas > 0).sum((1, 2))  # (k,)
        # squares may overlap, so the ink lies between one square and count squares
        assert (ink <= count * piece * piece).all()
        if count:
            assert (ink >= piece * piece).all()
            assert (ink == count * piece * piece).float().mean() > 0.5  # mostly apart on a 100x100 canvas
        else:
            assert (ink == 0).all()


def test_uint8_output_is_exact():
    d, pool = digits(10), digits(10, seed=1)
    f, fb = clutter(d, pool, 60, 4, generator=gen(1))
    u, ub = clutter(d, pool, 60, 4, generator=gen(1), as_uint8=True)
    assert u.dtype == torch.uint8 and torch.equal(fb, ub)
    torch.testing.assert_close(u.float() / 255, f, rtol=0, atol=0)


def test_rejects_bad_arguments():
    with pytest.raises(ValueError, match="size must be >= the digit side 28"):
        translate(digits(2), 20, gen(0))
    with pytest.raises(ValueError, match="distractors must be >= 0"):
        clutter(digits(2), digits(2), 60, -1, generator=gen(0))
    with pytest.raises(ValueError, match="piece must lie in"):
        clutter(digits(2), digits(2), 60, 2, piece=40, generator=gen(0))
    with pytest.raises(ValueError, match="uint8 or floating"):
        translate(torch.zeros(2, 28, 28, dtype=torch.long), 60, gen(0))
