"""The glimpse sensor of the recurrent attention model: a foveated, multi-resolution crop.

Mnih, Heess, Graves, Kavukcuoglu 2014, "Recurrent Models of Visual Attention" (arXiv:1406.6247),
sec. 3.1: the retina rho(x_t, l_{t-1}) extracts k square patches centred at the location l, the
first of side g, each next one `scale_factor` times wider, and resizes all of them to g x g, so a
glimpse sees the centre sharply and the surroundings coarsely.

    rho(x, l)  ->  Retina.glimpses(images, locations)   (b, k, c, g, g)

Coordinates. A location is (row, col) in [-1, 1]^2, the paper's frame: (-1, -1) is the top-left
corner of the image, (0, 0) its centre, (1, 1) the bottom-right corner. Values outside [-1, 1]
are clamped to it. Each coordinate maps to a pixel index, for an axis of n pixels,

    index = floor((l + 1) / 2 * (n - 1) + 1/2)       (`pixel_centres`)

so -1 is the first pixel's centre, 1 the last one's, and every location picks one pixel. A patch
of side S = g * scale_factor^s around pixel p covers indices p - S // 2 .. p - S // 2 + S - 1 on
each axis (for an even S the centre pixel sits just below and right of the patch's middle), so
the patches of every scale share their centre and nest. Pixels outside the image are zeros.
Resizing averages each scale_factor^s x scale_factor^s block (exact, no interpolation).

Fully vectorised, and its cost does not depend on the image: the widest patch is gathered for the
whole batch by index (indices clamped into the image, pixels outside zeroed by a mask), each scale
is a centred crop of it, average pooled. No copy or pass over the whole image is made.

A model that glimpses the same images several times (RAM) pads them once (`pad_images`, zeros on
every side, S - 1 rows and columns in all) and then takes each glimpse with one gather from the
flattened padded image (`foveate`): no clamp, no mask, the same patches.

A glimpse is read either flattened (the papers' fully connected glimpse networks) or by `PatchConv`,
two small convolutions over its k scales stacked as channels (`patch_conv` is its maths).
"""

from __future__ import annotations

from typing import cast

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def box_centres(boxes: Tensor, height: int, width: int) -> Tensor:
    """The location of each box's middle: boxes (..., 4) (top, left, height, width) in pixels -> (..., 2)
    (row, col) in [-1, 1]. `pixel_centres` maps it back to the box's middle pixel (the lower-right
    one of the middle four when the side is even)."""
    top, left, rows, cols = boxes.to(torch.float32).unbind(-1)  # (...,) each
    middle = torch.stack([top + (rows - 1) / 2, left + (cols - 1) / 2], dim=-1)  # (..., 2) pixel units
    sizes = torch.tensor([height - 1, width - 1], dtype=middle.dtype, device=middle.device)  # (2,)
    return middle / sizes * 2.0 - 1.0  # (..., 2)


def pixel_centres(locations: Tensor, height: int, width: int) -> Tensor:
    """The pixel each location points at.

    Args:
        locations: (..., 2) (row, col) in [-1, 1]; values outside are clamped.
        height: y, rows of the image.
        width: x, columns of the image.
    Returns:
        (..., 2) long (row, col) pixel indices, within 0..y-1 and 0..x-1.
    """
    sizes = torch.tensor([height - 1, width - 1], dtype=locations.dtype, device=locations.device)  # (2,)
    scaled = (locations.clamp(-1.0, 1.0) + 1.0) / 2.0 * sizes  # (..., 2) in pixel units
    return torch.floor(scaled + 0.5).long()  # (..., 2)


def pad_images(images: Tensor, widest: int) -> Tensor:
    """images (b, c, y, x) -> (b, c, y + S - 1, x + S - 1): zeros around, so every patch of side S lies inside.

    The patch around pixel p starts at padded index p: S // 2 zero rows (columns) come first.
    """
    before, after = widest // 2, widest - 1 - widest // 2
    return F.pad(images, (before, after, before, after))  # (b, c, y + S - 1, x + S - 1)


def foveate(
    padded: Tensor,
    locations: Tensor,
    height: int,
    width: int,
    glimpse_size: int,
    num_scales: int,
    scale_factor: int,
) -> Tensor:
    """The k scales around each location, gathered from images padded by `pad_images`.

    Args:
        padded: (b, c, y + S - 1, x + S - 1) from pad_images(images, S), S = g * f^(k-1).
        locations: (b, 2) (row, col) in [-1, 1] (clamped).
        height: y of the images before padding.
        width: x of the images before padding.
        glimpse_size, num_scales, scale_factor: g, k, f as in Retina.
    Returns:
        (b, k, c, g, g), equal to Retina.glimpses(images, locations).
    """
    b, c, _, padded_width = padded.shape
    widest = glimpse_size * scale_factor ** (num_scales - 1)
    centres = pixel_centres(locations, height, width)  # (b, 2)
    offsets = torch.arange(widest, device=padded.device)  # (S,)
    rows, cols = centres[:, :1] + offsets, centres[:, 1:] + offsets  # (b, S) each, padded frame
    flat = (rows[:, :, None] * padded_width + cols[:, None, :]).flatten(1)  # (b, S * S)
    patch = padded.flatten(2).gather(2, flat[:, None].expand(b, c, widest * widest))  # (b, c, S * S)
    patch = patch.view(b, c, widest, widest)  # (b, c, S, S)
    return _scales(patch, glimpse_size, num_scales, scale_factor)  # (b, k, c, g, g)


def _scales(patch: Tensor, glimpse_size: int, num_scales: int, scale_factor: int) -> Tensor:
    """The widest patch (b, c, S, S) -> its k centred crops, each pooled to g x g: (b, k, c, g, g)."""
    widest = patch.shape[-1]
    scales = []
    for s in range(num_scales):
        side = glimpse_size * scale_factor**s
        start = widest // 2 - side // 2  # this scale's top-left inside the widest patch
        crop = patch[:, :, start : start + side, start : start + side]  # (b, c, side, side)
        block = scale_factor**s
        scales.append(F.avg_pool2d(crop, block) if block > 1 else crop)  # (b, c, g, g)
    return torch.stack(scales, 1)  # (b, k, c, g, g)


class Retina(nn.Module):
    """Foveated glimpses: k patches around a location, each `scale_factor` times the previous width.

    Args:
        glimpse_size: g, side of the finest patch and of every resized patch.
        num_scales: k, patches per glimpse.
        scale_factor: f, width ratio of consecutive patches; scale s has side g * f^s.
        channels: c, image channels (sets `output_size`).
    """

    def __init__(self, glimpse_size: int, num_scales: int, scale_factor: int = 2, channels: int = 1):
        super().__init__()
        for name, value in (
            ("glimpse_size", glimpse_size),
            ("num_scales", num_scales),
            ("scale_factor", scale_factor),
            ("channels", channels),
        ):
            if value < 1:
                raise ValueError(f"Retina.{name}: must be >= 1; got {value}")
        self.glimpse_size = glimpse_size
        self.num_scales = num_scales
        self.scale_factor = scale_factor
        self.channels = channels

    @property
    def patch_sizes(self) -> list[int]:
        """Side of each scale's patch before resizing: g * f^s for s = 0..k-1."""
        return [self.glimpse_size * self.scale_factor**s for s in range(self.num_scales)]

    @property
    def output_size(self) -> int:
        """Features in one flattened glimpse: k * c * g * g."""
        return self.num_scales * self.channels * self.glimpse_size**2

    def check(self, images: Tensor) -> None:
        """Raise a ValueError unless images is (b, c, y, x) with this retina's c."""
        if images.dim() != 4 or images.shape[1] != self.channels:
            raise ValueError(f"Retina: images must be (b, c={self.channels}, y, x); got {tuple(images.shape)}")

    def glimpses(self, images: Tensor, locations: Tensor) -> Tensor:
        """The k patches of each image around its location, resized to g x g.

        Args:
            images: (b, c, y, x) floats.
            locations: (b, 2) (row, col) in [-1, 1] (clamped); see the module docstring.
        Returns:
            (b, k, c, g, g): scale 0 is the sharp centre, scale k-1 the widest, coarsest view.
        """
        self.check(images)
        b, _, y, x = images.shape
        if locations.shape != (b, 2):
            raise ValueError(f"Retina: locations must be (b={b}, 2); got {tuple(locations.shape)}")
        widest = self.patch_sizes[-1]
        offsets = torch.arange(widest, device=images.device) - widest // 2  # (S,)
        centres = pixel_centres(locations, y, x)  # (b, 2)
        rows, cols = centres[:, :1] + offsets, centres[:, 1:] + offsets  # (b, S) each
        inside = ((rows >= 0) & (rows < y))[:, :, None] & ((cols >= 0) & (cols < x))[:, None, :]  # (b, S, S)
        batch = torch.arange(b, device=images.device)[:, None, None]  # (b, 1, 1)
        patch = images[batch, :, rows.clamp(0, y - 1)[:, :, None], cols.clamp(0, x - 1)[:, None, :]]  # (b, S, S, c)
        patch = (patch * inside[..., None]).permute(0, 3, 1, 2)  # (b, c, S, S), zeros outside the image
        return _scales(patch, self.glimpse_size, self.num_scales, self.scale_factor)  # (b, k, c, g, g)

    def forward(self, images: Tensor, locations: Tensor) -> Tensor:
        """Same as `glimpses`: images (b, c, y, x), locations (b, 2) -> (b, k, c, g, g)."""
        return self.glimpses(images, locations)


def check_reader(config: str, what_net: str, glimpse_size: int) -> None:
    """Raise a ValueError naming config's field unless what_net is "mlp" (the patches flattened) or "conv"
    (`PatchConv`, whose two poolings need glimpse_size >= 4)."""
    if what_net not in ("mlp", "conv"):
        raise ValueError(f"{config}.what_net: must be 'mlp' or 'conv'; got {what_net!r}")
    if what_net == "conv" and glimpse_size < 4:
        raise ValueError(f"{config}.glimpse_size: what_net='conv' needs >= 4; got {glimpse_size}")


def patch_conv(patches: Tensor, w1: Tensor, b1: Tensor, w2: Tensor, b2: Tensor) -> Tensor:
    """PatchConv's maths on plain weights: patches (b, k, c, g, g) -> (b, second * (g // 4) ** 2).

    w1 (first, k * c, 3, 3), b1 (first,), w2 (second, first, 3, 3), b2 (second,).
    """
    # (b, k * c, g, g), the scales as channels, stored channels last, where oneDNN's CPU convolutions and max
    # pooling are faster (benchmarks/speed.py, section reader); the same values up to float rounding
    x = patches.flatten(1, 2).contiguous(memory_format=torch.channels_last)
    # pooling, then ReLU: relu(max(a, b)) = max(relu(a), relu(b)), ReLU on a quarter of the cells
    x = F.relu(F.max_pool2d(F.conv2d(x, w1, b1, padding=1), 2))  # (b, first, g // 2, g // 2)
    x = F.relu(F.max_pool2d(F.conv2d(x, w2, b2, padding=1), 2))  # (b, second, g // 4, g // 4)
    return x.flatten(1)  # (b, second * (g // 4) ** 2)


class PatchConv(nn.Module):
    """A convolutional reader of glimpses: two 3x3 convolutions (padding 1) of `first` and `second`
    channels (from `hidden`) over the k scales stacked as channels, each ReLU and 2x2 max pooling, flattened
    (`patch_conv` pools first, then ReLU: the same values and gradients, on a quarter of the cells).

    Args:
        channels: k * c, the scales times the image channels.
        glimpse_size: g, >= 4 (two poolings halve it twice).
        hidden: sets the convolutions' channels, first = hidden // 4 and second = hidden // 2 (at least 1).
    """

    def __init__(self, channels: int, glimpse_size: int, hidden: int):
        super().__init__()
        if glimpse_size < 4:
            raise ValueError(f"PatchConv: glimpse_size must be >= 4 (two 2x2 poolings); got {glimpse_size}")
        first, second = max(1, hidden // 4), max(1, hidden // 2)
        self.first = nn.Conv2d(channels, first, 3, padding=1)
        self.second = nn.Conv2d(first, second, 3, padding=1)
        self.output_size = second * (glimpse_size // 4) ** 2

    def weights(self) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """w1, b1, w2, b2 as `patch_conv` reads them."""
        return self.first.weight, cast(Tensor, self.first.bias), self.second.weight, cast(Tensor, self.second.bias)

    def forward(self, patches: Tensor) -> Tensor:
        """patches (b, k, c, g, g) -> (b, output_size)."""
        return patch_conv(patches, *self.weights())
