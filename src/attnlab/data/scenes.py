"""Digit scenes with captions whose attention answer is known: a captioning test bed that needs no data.

A scene is a grey canvas cut into a grid of rows x cols cells of cell x cell pixels, holding k (2
or 3) of scikit-learn's bundled 8x8 digits, each filling exactly one cell, in k distinct columns
(so "left of" is never ambiguous). Its caption lists the digits left to right:

    "a 3 left of a 7"               k = 2
    "a 3 left of a 7 left of a 1"   k = 3

so a caption of k digits has 4k - 2 words and word 4m + 1 (0-based) names the m-th digit. For
every word that names a digit, the cell the word is about is known: a captioner that attends over
the cells (Xu et al. 2015, "Show, Attend and Tell": the annotation vectors a_i, i = 1..L, one per
cell here) can be scored by how often the peak of its weights alpha_t lands on that cell.

Variables: n scenes, k_max = max(digits) digits at most per scene (fewer are padded with -1),
grid = (rows, cols), L = rows * cols cells numbered row-major, canvas H = rows * cell by
W = cols * cell. Digit images come from `sklearn.datasets.load_digits` (1797 images, values
0..16, scaled to [0, 1]) split as `load_small_digits` splits them: image i is a test image when
i % 5 == 0, so train and test scenes never share a digit image. Every random draw comes from one
generator seeded by (seed, split), so a seed and a split give one set of scenes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from attnlab.data.mnist import SMALL_TEST_EVERY

DIGIT_SIDE = 8  # scikit-learn's digits are 8 x 8
DIGIT_MAX = 16.0  # their values lie in 0..16
SPLITS = ("train", "test")
WORDS = ("a", "left", "of", *(str(d) for d in range(10)))  # every word a caption can hold
NO_CELL = -1  # the cell of a word that names no digit, and the padding of cells/labels

_DIGITS: dict[str, tuple[Tensor, Tensor, Tensor]] = {}  # split -> (images, labels, indices)


def _digits(split: str) -> tuple[Tensor, Tensor, Tensor]:
    """One split of scikit-learn's digits: images (m, 8, 8) in [0, 1], labels (m,), indices (m,)."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    if split not in _DIGITS:
        from sklearn.datasets import load_digits

        bunch = load_digits()
        images = torch.tensor(bunch.images, dtype=torch.float32) / DIGIT_MAX  # (1797, 8, 8)
        labels = torch.as_tensor(np.asarray(bunch.target, dtype=np.int64))  # (1797,)
        indices = torch.arange(len(labels))  # (1797,)
        is_test = indices % SMALL_TEST_EVERY == 0  # (1797,)
        for name, rows in (("test", is_test), ("train", ~is_test)):
            _DIGITS[name] = (images[rows], labels[rows], indices[rows])
    return _DIGITS[split]


@dataclass(frozen=True)
class Scenes:
    """n generated scenes, their captions and where each digit sits."""

    images: Tensor  # (n, 1, H, W) float in [0, 1]
    captions: list[list[str]]  # n token lists, digits left to right: a 3 left of a 7
    cells: Tensor  # (n, k_max) long, row-major cell of each digit in caption order; -1 pads
    labels: Tensor  # (n, k_max) long, the digit (0..9) each caption names, in order; -1 pads
    sources: Tensor  # (n, k_max) long, the index in load_digits() of each digit's image; -1 pads
    grid: tuple[int, int]  # (rows, cols) of cells
    cell: int  # the side of a cell in pixels

    def __len__(self) -> int:
        return len(self.captions)

    def named_cells(self, index: int) -> list[int]:
        """For every word of caption `index`, the cell of the digit it names, or -1 for a, left, of.

        Args:
            index: the scene.
        Returns:
            A list as long as captions[index] (4k - 2 words): cells[index, m] at word 4m + 1.
        """
        cells = self.cells[index].tolist()  # (k_max,)
        return [cells[w // 4] if w % 4 == 1 else NO_CELL for w in range(len(self.captions[index]))]


def caption(labels: list[int]) -> list[str]:
    """The caption of digits listed left to right: [3, 7] -> a 3 left of a 7."""
    words: list[str] = []
    for m, label in enumerate(labels):
        words += (["left", "of"] if m else []) + ["a", str(label)]
    return words


def make_scenes(
    n: int,
    *,
    seed: int,
    split: str = "train",
    digits: tuple[int, ...] = (2, 3),
    grid: tuple[int, int] = (2, 6),
    cell: int = DIGIT_SIDE,
) -> Scenes:
    """n scenes of k digits each (k drawn uniformly from `digits`), in distinct columns of a grid.

    Args:
        n: scenes to make.
        seed: with split, decides every draw.
        split: "train" or "test": which digit images are used (disjoint, see the module docstring).
        digits: the possible numbers of digits in a scene, each in 1..cols.
        grid: (rows, cols) of cells.
        cell: the side of a cell in pixels; digits are resized (bilinear) when it is not 8.
    Returns:
        Scenes with images (n, 1, rows * cell, cols * cell), cells/labels/sources (n, max(digits)).
    """
    rows, cols = grid
    if rows < 1 or cols < 1 or cell < 1:
        raise ValueError(f"grid and cell must be positive, got grid={grid}, cell={cell}")
    if not digits or any(not 1 <= k <= cols for k in digits):
        raise ValueError(f"digits must be numbers in 1..{cols} (one column each), got {digits}")
    pool, pool_labels, pool_indices = _digits(split)  # (m, 8, 8), (m,), (m,)
    if cell != DIGIT_SIDE:
        pool = F.interpolate(pool[:, None], size=(cell, cell), mode="bilinear", align_corners=False)[:, 0]
    generator = torch.Generator().manual_seed(seed * len(SPLITS) + SPLITS.index(split))
    k_max = max(digits)
    counts = torch.tensor(digits)[torch.randint(0, len(digits), (n,), generator=generator)]  # (n,)
    columns = torch.rand(n, cols, generator=generator).argsort(dim=1)[:, :k_max]  # (n, k_max), distinct
    row = torch.randint(0, rows, (n, k_max), generator=generator)  # (n, k_max)
    pick = torch.randint(0, len(pool), (n, k_max), generator=generator)  # (n, k_max)
    present = torch.arange(k_max) < counts[:, None]  # (n, k_max)
    # the present digits sorted by column, padding last: caption order is left to right
    key = torch.where(present, columns, cols)  # (n, k_max)
    key, order = key.sort(dim=1)  # (n, k_max)
    row, pick = row.gather(1, order), pick.gather(1, order)  # (n, k_max)
    cells = torch.where(present, row * cols + key, NO_CELL)  # (n, k_max)
    labels = torch.where(present, pool_labels[pick], NO_CELL)  # (n, k_max)
    sources = torch.where(present, pool_indices[pick], NO_CELL)  # (n, k_max)
    canvas = torch.zeros(n, rows * cols, cell, cell)  # (n, L, cell, cell)
    scene, slot = present.nonzero(as_tuple=True)  # (p,), (p,) for the p digits placed
    canvas[scene, cells[scene, slot]] = pool[pick[scene, slot]]  # (n, L, cell, cell)
    images = canvas.view(n, rows, cols, cell, cell).permute(0, 1, 3, 2, 4)  # (n, rows, cell, cols, cell)
    images = images.reshape(n, 1, rows * cell, cols * cell)  # (n, 1, H, W)
    captions = [caption(labels[i, : int(counts[i])].tolist()) for i in range(n)]
    return Scenes(images, captions, cells, labels, sources, (rows, cols), cell)


def patch_features(images: Tensor, cell: int) -> Tensor:
    """Each grid cell's pixels flattened: one annotation vector a_i per cell, cells row-major.

    Args:
        images: (n, c, H, W), H and W multiples of cell.
        cell: the side of a cell in pixels.
    Returns:
        (n, L, c * cell * cell) with L = (H / cell) * (W / cell); a cell's features are its
        pixels ordered by channel, then row, then column (`images[:, :, y0:y1, x0:x1].flatten(1)`).
    """
    n, c, height, width = images.shape
    if height % cell or width % cell:
        raise ValueError(f"image sides {height}x{width} must be multiples of cell={cell}")
    rows, cols = height // cell, width // cell
    patches = images.reshape(n, c, rows, cell, cols, cell)  # (n, c, rows, cell, cols, cell)
    patches = patches.permute(0, 2, 4, 1, 3, 5)  # (n, rows, cols, c, cell, cell)
    return patches.reshape(n, rows * cols, c * cell * cell)  # (n, L, c*cell*cell)
