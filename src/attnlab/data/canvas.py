"""Translated and cluttered digits (Mnih et al. 2014, "Recurrent Models of Visual Attention", sec. 4.1).

The paper's harder MNIST variants, which a glimpse-based model must search:

    translated  each 28x28 digit is placed at a uniformly random location of a blank
                size x size canvas (60x60 in the paper), fully inside it.
    cluttered   the translated digit plus `distractors` piece x piece sub-patches of other
                random digits, each cut at a random location of a random image of `pool`
                and added at a random location of the canvas (60x60 with 4 distractors and
                100x100 with 8 in the paper; piece = 8).
    apart       n digits per canvas, none of their boxes overlapping, plus distractors as
                cluttered (`clutter_apart`: the two-digit canvases of Ba, Mnih, Kavukcuoglu 2015,
                "Multiple Object Recognition with Visual Attention", sec. 4.1).

The paper does not say how a distractor combines with the digit where they overlap. Here pixels
combine by their maximum, so a distractor can add ink but never erase the digit: the canvas crop
at a digit's box is >= the digit pixelwise (and equal for `translate`).

Variables: k canvases; `corner` (k, 2) the digit's top-left (row, column); `boxes` (k, 4) =
(top, left, height, width) of the digit in canvas pixels; d distractors per canvas, cut from pool
image `source` (k, d) at `cut` (k, d, 2) and pasted at `place` (k, d, 2). The pool may hold the
digit itself (the task cuts from its own split), which with m images happens with chance 1/m. Every random draw comes from the given generator,
in a fixed order (digit corners first, then the distractors), so one generator state gives one
set of canvases, and `clutter` with a generator in the same state as `translate` puts each digit
where `translate` does. Everything is vectorised over k (no Python loop over images). Canvases
are float32 in [0, 1], or uint8 in 0..255 with `as_uint8` (exact for uint8 input, 4x smaller).
"""

from __future__ import annotations

import torch
from torch import Tensor

PIECE = 8  # side of a distractor sub-patch (Mnih et al. 2014, sec. 4.1)


def _convert(images: Tensor, as_uint8: bool) -> Tensor:
    """images (uint8 0..255, or floating in [0, 1]) as float32 in [0, 1], or as uint8 0..255."""
    images = torch.as_tensor(images)
    if images.dtype != torch.uint8 and not images.is_floating_point():
        raise ValueError(f"images must be uint8 or floating, got {images.dtype}")
    if as_uint8:
        return images if images.dtype == torch.uint8 else (images * 255).round().clamp(0, 255).to(torch.uint8)
    return images.float() / 255.0 if images.dtype == torch.uint8 else images.float()


def _paste_max(canvas: Tensor, patches: Tensor, top: Tensor, left: Tensor) -> Tensor:
    """Max-combine patches (k, p, s, s) into canvas (k, size, size) at corners top, left (k, p).

    In place (the canvases are fresh buffers of this module); overlapping patches of one canvas
    combine by their maximum too (scatter with "amax").
    """
    k, size, _ = canvas.shape
    p, side = patches.shape[1], patches.shape[-1]
    offsets = torch.arange(side, device=canvas.device)  # (s,)
    rows = top[..., None] + offsets  # (k, p, s)
    cols = left[..., None] + offsets  # (k, p, s)
    flat = rows[..., :, None] * size + cols[..., None, :]  # (k, p, s, s)
    canvas.view(k, size * size).scatter_reduce_(
        1, flat.reshape(k, p * side * side), patches.reshape(k, p * side * side), reduce="amax"
    )  # (k, size*size)
    return canvas


def translate(
    digits: Tensor, size: int, generator: torch.Generator, *, as_uint8: bool = False
) -> tuple[Tensor, Tensor]:
    """Each digit at a uniformly random position fully inside a blank size x size canvas.

    Args:
        digits: (k, 28, 28) uint8 (0..255) or float in [0, 1]; any square side s <= size works.
        size: the canvas side.
        generator: the source of every random draw.
        as_uint8: return uint8 canvases in 0..255 instead (exact for uint8 digits, 4x smaller).
    Returns:
        canvas (k, size, size) float32 in [0, 1]; boxes (k, 4) long (top, left, height, width).
    """
    digits = _convert(digits, as_uint8)  # (k, s, s)
    k, side = digits.shape[0], digits.shape[-1]
    if digits.dim() != 3 or digits.shape[1] != side:
        raise ValueError(f"digits must be (k, s, s), got {tuple(digits.shape)}")
    if size < side:
        raise ValueError(f"size must be >= the digit side {side}, got {size}")
    corner = torch.randint(0, size - side + 1, (k, 2), generator=generator).to(digits.device)  # (k, 2)
    canvas = torch.zeros(k, size, size, dtype=digits.dtype, device=digits.device)  # (k, size, size)
    canvas = _paste_max(canvas, digits[:, None], corner[:, :1], corner[:, 1:])  # (k, size, size)
    extent = torch.full((k, 2), side, dtype=torch.long, device=digits.device)  # (k, 2)
    return canvas, torch.cat([corner, extent], dim=1)  # (k, size, size), (k, 4)


def clutter(
    digits: Tensor,
    pool: Tensor,
    size: int,
    distractors: int,
    piece: int = PIECE,
    *,
    generator: torch.Generator,
    as_uint8: bool = False,
) -> tuple[Tensor, Tensor]:
    """Translated digits plus `distractors` piece x piece crops of random pool images each.

    Args:
        digits: (k, 28, 28) uint8 or float in [0, 1], the digits to find.
        pool: (m, 28, 28) uint8 or float in [0, 1], the images distractor pieces are cut from.
        size: the canvas side.
        distractors: pieces per canvas (>= 0).
        piece: the side of a piece (<= the pool images' side and <= size).
        generator: the source of every random draw (digit corners first, as `translate`).
        as_uint8: return uint8 canvases in 0..255 instead (exact for uint8 images, 4x smaller).
    Returns:
        canvas (k, size, size) float32 in [0, 1]; boxes (k, 4) long (top, left, height, width)
        of the digit. Pixels combine by their maximum, so a piece never erases the digit.
    """
    canvas, boxes = translate(digits, size, generator, as_uint8=as_uint8)  # (k, size, size), (k, 4)
    return _add_distractors(canvas, pool, distractors, piece, generator, as_uint8), boxes


def _add_distractors(
    canvas: Tensor, pool: Tensor, distractors: int, piece: int, generator: torch.Generator, as_uint8: bool
) -> Tensor:
    """Max-combine `distractors` piece x piece crops of random pool images (m, s, s) into canvas (k, size, size)."""
    pool = torch.as_tensor(pool).to(canvas.device)  # (m, s, s), converted to float piece by piece
    k, size, (m, side) = canvas.shape[0], canvas.shape[-1], (pool.shape[0], pool.shape[-1])
    if distractors < 0:
        raise ValueError(f"distractors must be >= 0, got {distractors}")
    if not 1 <= piece <= min(side, size):
        raise ValueError(f"piece must lie in 1..{min(side, size)} (pool side and canvas size), got {piece}")
    if distractors == 0 or k == 0:
        return canvas
    if m == 0:
        raise ValueError("pool must hold at least one image to cut distractors from")
    d = distractors
    source = torch.randint(0, m, (k, d), generator=generator).to(canvas.device)  # (k, d)
    cut = torch.randint(0, side - piece + 1, (k, d, 2), generator=generator).to(canvas.device)  # (k, d, 2)
    place = torch.randint(0, size - piece + 1, (k, d, 2), generator=generator).to(canvas.device)  # (k, d, 2)
    offsets = torch.arange(piece, device=canvas.device)  # (piece,)
    rows = cut[..., 0, None] + offsets  # (k, d, piece)
    cols = cut[..., 1, None] + offsets  # (k, d, piece)
    pieces = pool[source[..., None, None], rows[..., :, None], cols[..., None, :]]  # (k, d, piece, piece)
    pieces = _convert(pieces, as_uint8).to(canvas.dtype)  # cut first, so only the pieces are converted
    return _paste_max(canvas, pieces, place[..., 0], place[..., 1])  # (k, size, size)


def apart_corners(k: int, n: int, side: int, size: int, generator: torch.Generator) -> Tensor:
    """Top-left corners of n side x side boxes per canvas, uniform over the placements where no two overlap.

    Rejection sampling: every canvas draws all n corners uniformly (fully inside the canvas); the
    canvases where some two boxes overlap draw all their n corners again, until none does. Two boxes
    overlap when they are closer than `side` on both axes. Needs size >= n * side, so that a
    placement exists (side by side); the expected number of rounds is then finite.

    Args:
        k: canvases; n: boxes per canvas; side: the boxes' side; size: the canvas side.
        generator: the source of every draw (rounds in order, each a (k', n, 2) draw for the k'
            canvases still overlapping), so one generator state gives one set of corners.
    Returns:
        (k, n, 2) long (row, column) corners.
    """
    if size < n * side:
        raise ValueError(f"size must be >= {n} x {side} = {n * side} to place {n} boxes apart, got {size}")
    corners = torch.zeros(k, n, 2, dtype=torch.long)  # (k, n, 2)
    todo = torch.arange(k)  # (k',) canvases still to place
    pairs = torch.triu_indices(n, n, offset=1)  # (2, p) every unordered pair of boxes
    while len(todo):
        drawn = torch.randint(0, size - side + 1, (len(todo), n, 2), generator=generator)  # (k', n, 2)
        gap = (drawn[:, pairs[0]] - drawn[:, pairs[1]]).abs()  # (k', p, 2)
        clash = (gap < side).all(-1).any(-1)  # (k',) some two boxes overlap on both axes
        corners[todo[~clash]] = drawn[~clash]
        todo = todo[clash]  # (k'',)
    return corners


def clutter_apart(
    digits: Tensor,
    pool: Tensor,
    size: int,
    distractors: int,
    piece: int = PIECE,
    *,
    generator: torch.Generator,
    as_uint8: bool = False,
) -> tuple[Tensor, Tensor]:
    """n digits per canvas at random places where no two boxes overlap, plus `distractors` pieces.

    The digits' corners come first (`apart_corners`), then the distractors as in `clutter` (cut from
    pool, max-combined anywhere, so a piece may cross a digit but never erases it).

    Args:
        digits: (k, n, s, s) uint8 or float in [0, 1], the digits of each canvas.
        pool: (m, s', s') uint8 or float in [0, 1], the images distractor pieces are cut from.
        size: the canvas side (>= n * s).
        distractors: pieces per canvas (>= 0; 0 gives the digits on a blank canvas).
        piece: the side of a piece.
        generator: the source of every random draw.
        as_uint8: return uint8 canvases in 0..255 instead.
    Returns:
        canvas (k, size, size) float32 in [0, 1] (or uint8); boxes (k, n, 4) long (top, left,
        height, width) of each digit, in the order of `digits`.
    """
    if digits.dim() != 4 or digits.shape[-1] != digits.shape[-2]:
        raise ValueError(f"digits must be (k, n, s, s), got {tuple(digits.shape)}")
    k, n, side = digits.shape[0], digits.shape[1], digits.shape[-1]
    digits = _convert(digits, as_uint8)  # (k, n, s, s)
    corners = apart_corners(k, n, side, size, generator).to(digits.device)  # (k, n, 2)
    canvas = torch.zeros(k, size, size, dtype=digits.dtype, device=digits.device)  # (k, size, size)
    canvas = _paste_max(canvas, digits, corners[..., 0], corners[..., 1])  # (k, size, size)
    canvas = _add_distractors(canvas, pool, distractors, piece, generator, as_uint8)  # (k, size, size)
    extent = torch.full((k, n, 2), side, dtype=torch.long, device=digits.device)  # (k, n, 2)
    return canvas, torch.cat([corners, extent], dim=-1)  # (k, size, size), (k, n, 4)
