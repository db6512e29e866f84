"""The retina: against a naive crop-and-resize loop, zero padding at the edges, a planted pixel, and
the pad-once-then-gather form (foveate) equal to it; PatchConv against the layers it names."""

import math

import pytest
import torch

from attnlab.glimpse.retina import PatchConv, Retina, box_centres, foveate, pad_images, pixel_centres


def naive_centre(location: float, n: int) -> int:
    """The documented mapping, written out: clamp to [-1, 1], then the nearest pixel centre."""
    clamped = min(1.0, max(-1.0, location))
    return math.floor((clamped + 1) / 2 * (n - 1) + 0.5)


def naive_glimpses(images, locations, g, k, f):
    """Per example, per scale: crop a side g*f^s square with zero padding, then mean over blocks."""
    b, c, y, x = images.shape
    out = torch.zeros(b, k, c, g, g, dtype=images.dtype)
    for n in range(b):
        r0 = naive_centre(float(locations[n, 0]), y)
        c0 = naive_centre(float(locations[n, 1]), x)
        for s in range(k):
            side, block = g * f**s, f**s
            crop = torch.zeros(c, side, side, dtype=images.dtype)
            for i in range(side):
                for j in range(side):
                    r, q = r0 - side // 2 + i, c0 - side // 2 + j
                    if 0 <= r < y and 0 <= q < x:
                        crop[:, i, j] = images[n, :, r, q]
            for i in range(g):
                for j in range(g):
                    cell = crop[:, i * block : (i + 1) * block, j * block : (j + 1) * block]
                    out[n, s, :, i, j] = cell.mean((-2, -1))
    return out


@pytest.mark.parametrize("g, k, f, c, y, x", [(4, 3, 2, 1, 13, 10), (3, 2, 2, 2, 9, 12), (2, 2, 3, 3, 8, 8)])
def test_glimpses_match_a_naive_crop_and_resize_loop(g, k, f, c, y, x):
    gen = torch.Generator().manual_seed(g * 100 + k * 10 + c)
    images = torch.rand(7, c, y, x, generator=gen, dtype=torch.float64)
    corners = torch.tensor([[-1.0, -1.0], [1.0, 1.0], [-1.0, 1.0], [1.7, -3.0]], dtype=torch.float64)  # last: clamped
    locations = torch.cat([corners, torch.rand(3, 2, generator=gen, dtype=torch.float64) * 2 - 1])  # (7, 2)
    retina = Retina(g, k, f, channels=c)
    got = retina.glimpses(images, locations)
    assert got.shape == (7, k, c, g, g)
    assert retina.output_size == k * c * g * g
    torch.testing.assert_close(got, naive_glimpses(images, locations, g, k, f))


@pytest.mark.parametrize(
    "g, k, f, c, y, x", [(4, 3, 2, 1, 13, 10), (3, 2, 2, 2, 9, 12), (2, 2, 3, 3, 8, 8), (5, 1, 2, 1, 6, 7)]
)
def test_foveate_on_padded_images_equals_the_glimpses(g, k, f, c, y, x):
    gen = torch.Generator().manual_seed(g * 100 + k * 10 + c + 1)
    images = torch.rand(7, c, y, x, generator=gen) - 0.5  # signs too: the padding must be zeros, not a clamp
    corners = torch.tensor([[-1.0, -1.0], [1.0, 1.0], [-1.0, 1.0], [1.7, -3.0]])
    locations = torch.cat([corners, torch.rand(3, 2, generator=gen) * 2 - 1])  # (7, 2)
    retina = Retina(g, k, f, channels=c)
    widest = retina.patch_sizes[-1]
    padded = pad_images(images, widest)
    assert padded.shape == (7, c, y + widest - 1, x + widest - 1)
    got = foveate(padded, locations, y, x, g, k, f)
    torch.testing.assert_close(got, retina.glimpses(images, locations), rtol=0, atol=0)


def test_locations_map_to_the_documented_pixels():
    locations = torch.tensor([[-1.0, -1.0], [1.0, 1.0], [0.0, 0.0], [5.0, -5.0]])
    assert pixel_centres(locations, 9, 28).tolist() == [[0, 0], [8, 27], [4, 14], [8, 0]]  # (27 * 0.5 + 0.5) -> 14


def test_box_centres_point_at_each_box_middle_pixel():
    boxes = torch.tensor([[0, 0, 28, 28], [10, 30, 28, 28], [3, 4, 5, 7], [0, 0, 60, 60]])  # (top, left, h, w)
    centres = box_centres(boxes, 60, 60)  # (4, 2)
    assert centres[3].tolist() == [0.0, 0.0]  # the whole image: its centre
    torch.testing.assert_close(centres[0], torch.tensor([13.5, 13.5]) / 59 * 2 - 1)
    # back to pixels: the middle pixel of an odd side, the lower-right of the middle four of an even one
    assert pixel_centres(centres, 60, 60).tolist() == [[14, 14], [24, 44], [5, 7], [30, 30]]


def test_a_patch_at_the_corner_is_zero_where_it_leaves_the_image():
    images = torch.ones(1, 1, 10, 10)
    patches = Retina(4, 2).glimpses(images, torch.tensor([[-1.0, -1.0]]))  # centre pixel (0, 0)
    fine = patches[0, 0, 0]  # rows/cols -2..1: the first two of each are outside
    want = torch.zeros(4, 4)
    want[2:, 2:] = 1.0
    torch.testing.assert_close(fine, want)
    coarse = patches[0, 1, 0]  # rows/cols -4..3 averaged over 2x2 blocks: blocks 2 and 3 are inside
    want = torch.zeros(4, 4)
    want[2:, 2:] = 1.0
    torch.testing.assert_close(coarse, want)
    bottom_right = Retina(4, 1).glimpses(images, torch.tensor([[1.0, 1.0]]))[0, 0, 0]  # rows/cols 7..10
    want = torch.ones(4, 4)
    want[3, :] = 0.0
    want[:, 3] = 0.0
    torch.testing.assert_close(bottom_right, want)


def test_a_planted_bright_pixel_appears_in_the_patch_centred_on_it():
    y, x, g = 15, 11, 5
    for row, col in [(3, 7), (0, 10), (14, 0), (8, 5)]:
        images = torch.zeros(1, 1, y, x)
        images[0, 0, row, col] = 1.0
        location = torch.tensor([[row / (y - 1) * 2 - 1, col / (x - 1) * 2 - 1]])
        patches = Retina(g, 2).glimpses(images, location)  # (1, 2, 1, 5, 5)
        fine = patches[0, 0, 0]
        assert fine[g // 2, g // 2].item() == 1.0 and fine.sum().item() == 1.0
        assert patches[0, 1, 0].sum().item() == pytest.approx(1.0 / 4)  # one pixel of a 2x2 block


def test_batch_rows_are_independent():
    gen = torch.Generator().manual_seed(3)
    images = torch.rand(6, 2, 16, 16, generator=gen)
    locations = torch.rand(6, 2, generator=gen) * 2 - 1
    retina = Retina(4, 3, channels=2)
    together = retina.glimpses(images, locations)
    alone = torch.cat([retina.glimpses(images[i : i + 1], locations[i : i + 1]) for i in range(6)])
    torch.testing.assert_close(together, alone)
    changed = images.clone()
    changed[2] = 0.0
    after = retina.glimpses(changed, locations)
    keep = [0, 1, 3, 4, 5]
    torch.testing.assert_close(after[keep], together[keep])
    assert after[2].abs().sum().item() == 0.0


def test_bad_shapes_fail_with_a_message():
    with pytest.raises(ValueError, match="c=1"):
        Retina(4, 1).glimpses(torch.zeros(2, 3, 8, 8), torch.zeros(2, 2))
    with pytest.raises(ValueError, match="locations"):
        Retina(4, 1).glimpses(torch.zeros(2, 1, 8, 8), torch.zeros(3, 2))
    with pytest.raises(ValueError, match="glimpse_size"):
        Retina(0, 1)


def test_patch_conv_equals_the_layers_it_names():
    torch.manual_seed(0)
    reader = PatchConv(channels=3 * 2, glimpse_size=12, hidden=16)  # k = 3 scales of c = 2 channels
    patches = torch.randn(5, 3, 2, 12, 12)  # (b, k, c, g, g)
    reference = torch.nn.Sequential(
        reader.first, torch.nn.ReLU(), torch.nn.MaxPool2d(2), reader.second, torch.nn.ReLU(), torch.nn.MaxPool2d(2)
    )
    stacked = patches.reshape(5, 6, 12, 12)  # (b, k * c, g, g)
    want = reference(stacked.contiguous(memory_format=torch.channels_last)).reshape(5, -1)  # (b, 8 * 3 * 3)
    got = reader(patches)
    assert reader.first.out_channels == 4 and reader.second.out_channels == 8
    assert got.shape == (5, reader.output_size) == (5, 8 * 3 * 3)
    torch.testing.assert_close(got, want, rtol=0, atol=0)  # the same layers on the same layout
    weights = list(reader.parameters())
    pooled_first = torch.autograd.grad(got.square().sum(), weights)  # patch_conv pools before its ReLU
    relu_first = torch.autograd.grad(want.square().sum(), weights)
    for a, b in zip(pooled_first, relu_first, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    # channels first, oneDNN may sum in another order (on AVX2 CPUs it does): the same values to rounding
    torch.testing.assert_close(got, reference(stacked).reshape(5, -1), rtol=1e-5, atol=1e-6)


def test_patch_conv_reads_every_scale_as_its_own_channel():
    torch.manual_seed(0)
    reader = PatchConv(channels=2, glimpse_size=8, hidden=8)
    patches = torch.rand(4, 2, 1, 8, 8)  # (b, k = 2, c = 1, g, g)
    swapped = patches.flip(1)  # the same pixels, the scales exchanged
    assert not torch.allclose(reader(patches), reader(swapped))
    with torch.no_grad():
        reader.first.weight[:, 1] = 0.0  # the coarse scale's filters off: it no longer matters
    changed = patches.clone()
    changed[:, 1] = torch.rand(4, 1, 8, 8)
    torch.testing.assert_close(reader(changed), reader(patches), rtol=0, atol=0)
    changed[:, 0] += 0.5
    assert not torch.allclose(reader(changed), reader(patches))


def test_patch_conv_needs_two_poolings_of_room():
    with pytest.raises(ValueError, match="PatchConv: glimpse_size must be >= 4"):
        PatchConv(channels=1, glimpse_size=3, hidden=8)
