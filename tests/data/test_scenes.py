"""Digit scenes: determinism, placement, captions, named cells, disjoint splits, cell features."""

import pytest
import torch
from sklearn.datasets import load_digits

from attnlab.data.scenes import WORDS, caption, make_scenes, patch_features

DIGITS = load_digits()


def cell_pixels(images: torch.Tensor, grid: tuple[int, int], cell: int) -> torch.Tensor:
    """(n, L, cell, cell): each cell's pixels cut out with explicit slices, row-major."""
    rows, cols = grid
    cut = [images[:, 0, r * cell : (r + 1) * cell, c * cell : (c + 1) * cell] for r in range(rows) for c in range(cols)]
    return torch.stack(cut, dim=1)


def test_deterministic_by_seed():
    a, b = make_scenes(40, seed=3), make_scenes(40, seed=3)
    assert torch.equal(a.images, b.images) and a.captions == b.captions
    assert torch.equal(a.cells, b.cells) and torch.equal(a.sources, b.sources)
    c = make_scenes(40, seed=4)
    assert not torch.equal(a.images, c.images)


@pytest.mark.parametrize(("grid", "digits"), [((2, 6), (2, 3)), ((3, 6), (3,)), ((1, 4), (2,))])
def test_digits_sit_in_their_cells(grid, digits):
    scenes = make_scenes(60, seed=0, grid=grid, digits=digits)
    rows, cols = grid
    n, k_max = scenes.cells.shape
    assert scenes.images.shape == (60, 1, rows * 8, cols * 8) and k_max == max(digits)
    assert scenes.images.min() >= 0.0 and scenes.images.max() <= 1.0
    pixels = cell_pixels(scenes.images, grid, 8)  # (n, L, 8, 8)
    for i in range(n):
        present = [m for m in range(k_max) if scenes.labels[i, m] >= 0]
        assert len(present) in digits and present == list(range(len(present)))  # padding comes last
        cells = [int(scenes.cells[i, m]) for m in present]
        assert len({c % cols for c in cells}) == len(cells)  # distinct columns, so never overlapping
        for m in present:
            source = int(scenes.sources[i, m])
            assert DIGITS.target[source] == scenes.labels[i, m]
            expected = torch.tensor(DIGITS.images[source], dtype=torch.float32) / 16
            assert torch.equal(pixels[i, cells[m]], expected)
        empty = [c for c in range(rows * cols) if c not in cells]
        assert pixels[i, empty].abs().sum() == 0  # every other cell is blank
        assert (scenes.cells[i, len(present) :] == -1).all() and (scenes.sources[i, len(present) :] == -1).all()


def test_captions_read_left_to_right():
    scenes = make_scenes(50, seed=1)
    cols = scenes.grid[1]
    assert {len(c) for c in scenes.captions} == {6, 10}  # 2 and 3 digits both occur
    for i, words in enumerate(scenes.captions):
        k = int((scenes.labels[i] >= 0).sum())
        assert words == caption([int(d) for d in scenes.labels[i, :k]])
        assert " ".join(words[:6]) == f"a {int(scenes.labels[i, 0])} left of a {int(scenes.labels[i, 1])}"
        columns = [int(c) % cols for c in scenes.cells[i, :k]]
        assert columns == sorted(columns)
        assert set(words) <= set(WORDS)
    assert caption([3, 7, 1]) == ["a", "3", "left", "of", "a", "7", "left", "of", "a", "1"]


def test_named_cells_point_at_digit_words_only():
    scenes = make_scenes(30, seed=2)
    for i, words in enumerate(scenes.captions):
        named = scenes.named_cells(i)
        assert len(named) == len(words)
        digit_words = [w for w, word in enumerate(words) if word.isdigit()]
        assert [w for w, cell in enumerate(named) if cell >= 0] == digit_words
        for m, w in enumerate(digit_words):
            assert named[w] == scenes.cells[i, m]
            # the named cell really holds that digit
            assert DIGITS.target[int(scenes.sources[i, m])] == int(words[w])


def test_train_and_test_use_disjoint_digit_images():
    train, test = make_scenes(400, seed=0, split="train"), make_scenes(400, seed=0, split="test")
    used_train = set(train.sources[train.sources >= 0].tolist())
    used_test = set(test.sources[test.sources >= 0].tolist())
    assert used_train and used_test and not used_train & used_test
    assert all(s % 5 == 0 for s in used_test) and all(s % 5 for s in used_train)
    with pytest.raises(ValueError, match="split"):
        make_scenes(2, seed=0, split="val")


def test_bad_arguments():
    with pytest.raises(ValueError, match="digits"):
        make_scenes(2, seed=0, grid=(2, 2), digits=(3,))
    with pytest.raises(ValueError, match="multiples"):
        patch_features(torch.zeros(1, 1, 10, 16), cell=8)


def test_patch_features_put_the_digit_at_its_cell():
    scenes = make_scenes(20, seed=5, grid=(3, 6), cell=10)  # digits resized to 10x10
    features = patch_features(scenes.images, 10)  # (n, L, 100)
    assert features.shape == (20, 18, 100)
    assert torch.equal(features, cell_pixels(scenes.images, (3, 6), 10).flatten(2))
    for i in range(20):
        k = int((scenes.labels[i] >= 0).sum())
        inked = set(torch.nonzero(features[i].sum(1) > 0).flatten().tolist())
        assert inked == set(scenes.cells[i, :k].tolist())
    colour = torch.rand(2, 3, 4, 6)
    per_cell = patch_features(colour, 2)  # (2, 6, 12): channel, then row, then column
    assert torch.equal(per_cell[:, 5], colour[:, :, 2:4, 4:6].flatten(1))  # row 1, column 2
