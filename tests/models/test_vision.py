"""Image baselines: shapes at several image sizes, overfitting one batch, spec checks, FLOP counting,
and the soft attention's traced weights (shape, normalisation, a planted bright square)."""

import math

import pytest
import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

import attnlab.models.vision  # noqa: F401  (registers the families)
from attnlab.core import capture
from attnlab.models import build_model
from attnlab.models.vision import ImageCNNConfig, SoftAttentionConfig, sinusoid_2d
from attnlab.spec import TaskSpec

TINY = {
    "image_mlp": {"hidden_dim": 32, "num_layers": 1},
    "image_cnn": {"channels": (8, 16), "kernel_size": 3, "hidden_dim": 32},
    "soft_attention": {"channels": (8, 16), "kernel_size": 3, "embed_dim": 16, "num_heads": 2, "hidden_dim": 32},
}
FAMILIES = list(TINY)


def image_spec(c=1, size=28, classes=10):
    return TaskSpec(seq_len=1, answer_len=1, num_outputs=classes, image=(c, size, size))


def tiny(name, spec, **extra):
    torch.manual_seed(0)
    return build_model(name, {**TINY[name], **extra}, spec).eval()


def images(b, c, size, seed=0):
    return torch.rand(b, c, size, size, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("name", FAMILIES)
@pytest.mark.parametrize("c, size", [(1, 28), (1, 60), (3, 28)])
def test_shapes(name, c, size):
    model = tiny(name, image_spec(c=c, size=size, classes=7))
    logits = model(images(5, c, size))
    assert logits.shape == (5, 1, 7)
    assert torch.isfinite(logits).all()


@pytest.mark.parametrize("name", FAMILIES)
def test_rejects_wrong_inputs(name):
    model = tiny(name, image_spec())
    with pytest.raises(ValueError, match="inputs must be float images"):
        model(images(2, 1, 30))
    with pytest.raises(ValueError, match="inputs must be float images"):
        model(torch.zeros(2, 1, 28, 28, dtype=torch.long))


# Global average pooling of iid noise leaves the 49 cells' means of a 28x28 image nearly equal from
# image to image, so memorising random labels takes thousands of steps there; at 16x16 (16 cells)
# it takes a few hundred. The flattened variant is tried at 28x28.
OVERFIT = [
    ("image_mlp", 28, {}, 3e-3),
    ("image_cnn", 28, {"pooling": "flatten"}, 3e-3),
    ("image_cnn", 16, {"pooling": "avg"}, 1e-2),
    ("soft_attention", 28, {}, 3e-3),
]


@pytest.mark.parametrize("name, size, extra, lr", OVERFIT)
def test_overfits_one_batch(name, size, extra, lr):
    x = images(32, 1, size, seed=1)
    y = torch.randint(0, 10, (32, 1), generator=torch.Generator().manual_seed(2))
    model = tiny(name, image_spec(size=size), **extra).train()
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    for _ in range(600):
        loss = F.cross_entropy(model(x, y).flatten(0, 1), y.flatten())
        if loss.item() < 0.02:
            break
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.02
    assert torch.equal(model.eval()(x).argmax(-1), y)


@pytest.mark.parametrize("name", FAMILIES)
@pytest.mark.parametrize(
    "spec, problem",
    [
        (TaskSpec(seq_len=8, answer_len=1, vocab_size=10, num_outputs=10), "TaskSpec.image"),
        (TaskSpec(seq_len=8, answer_len=1, num_outputs=10, image=(28, 28)), "TaskSpec.image"),
        (TaskSpec(seq_len=8, answer_len=2, num_outputs=10, image=(1, 28, 28)), "TaskSpec.answer_len"),
        (TaskSpec(seq_len=8, answer_len=1, num_outputs=1, image=(1, 28, 28)), "TaskSpec.num_outputs"),
    ],
)
def test_bad_spec(name, spec, problem):
    with pytest.raises(ValueError, match=problem) as info:
        build_model(name, TINY[name], spec)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("name", ["image_cnn", "soft_attention"])
def test_image_too_small_for_the_pools(name):
    with pytest.raises(ValueError, match="smaller than 4x4"):
        build_model(name, TINY[name], image_spec(size=3))


@pytest.mark.parametrize(
    "cls, values, field",
    [
        (ImageCNNConfig, {"channels": ()}, "channels"),
        (ImageCNNConfig, {"kernel_size": 4}, "kernel_size"),
        (ImageCNNConfig, {"pooling": "max"}, "pooling"),
        (ImageCNNConfig, {"dropout": 1.0}, "dropout"),
        (SoftAttentionConfig, {"embed_dim": 18, "num_heads": 2}, "embed_dim"),
        (SoftAttentionConfig, {"embed_dim": 16, "num_heads": 3}, "embed_dim"),
        (SoftAttentionConfig, {"num_heads": 0}, "num_heads"),
    ],
)
def test_bad_config(cls, values, field):
    with pytest.raises(ValueError, match=field):
        cls(**values)


def num_params(model):
    return sum(p.numel() for p in model.parameters())


def test_parameter_counts_and_image_size():
    # Global average pooling and a sinusoidal position table: nothing is sized by the image.
    for name in ("image_cnn", "soft_attention"):
        assert num_params(tiny(name, image_spec(size=28))) == num_params(tiny(name, image_spec(size=100)))
    # Flattening the feature map and the MLP both grow with the image.
    small, big = (tiny("image_cnn", image_spec(size=s), pooling="flatten") for s in (28, 60))
    assert num_params(big) - num_params(small) == 16 * (15 * 15 - 7 * 7) * 32
    small, big = (tiny("image_mlp", image_spec(size=s)) for s in (28, 60))
    assert num_params(big) - num_params(small) == (60 * 60 - 28 * 28) * 32


def count_flops(model, x):
    with FlopCounterMode(display=False) as counter:
        model(x)
    return counter.get_total_flops()


@pytest.mark.parametrize("name", FAMILIES)
def test_flop_counter_grows_with_the_image(name):
    small = count_flops(tiny(name, image_spec(size=28)), images(2, 1, 28))
    big = count_flops(tiny(name, image_spec(size=60)), images(2, 1, 60))
    assert 0 < small < big
    if name == "image_cnn":
        # The first conv alone: 2 images * 28 * 28 positions * 8 outputs * 3 * 3 taps, 2 flops each.
        assert small >= 2 * 2 * 28 * 28 * 8 * 9


def test_sinusoid_2d_against_a_loop():
    rows, cols, d = 3, 5, 8
    table = sinusoid_2d(rows, cols, d)
    assert table.shape == (rows * cols, d)
    quarter = d // 4
    for r in range(rows):
        for c in range(cols):
            cell = table[r * cols + c]
            for n in range(quarter):
                w = 10000.0 ** (-n / quarter)
                expected = [math.sin(r * w), math.cos(r * w), math.sin(c * w), math.cos(c * w)]
                got = [cell[n], cell[quarter + n], cell[2 * quarter + n], cell[3 * quarter + n]]
                assert torch.allclose(torch.tensor(got), torch.tensor(expected), atol=1e-5)


@pytest.mark.parametrize("size, grid", [(28, (7, 7)), (60, (15, 15))])
def test_traced_weights_shape_and_rows(size, grid):
    model = tiny("soft_attention", image_spec(size=size))
    x = images(3, 1, size)
    plain = model(x)
    with capture(model) as trace:
        traced = model(x)
    assert torch.allclose(traced, plain, atol=1e-6)
    (record,) = trace.select(kind="spatial")
    assert record.extra["grid"] == grid
    assert record.weights.shape == (3, 2, 1, grid[0] * grid[1])
    assert torch.allclose(record.weights.sum(-1), torch.ones(3, 2, 1), atol=1e-6)
    assert (record.weights >= 0).all()
    assert len(model(x)) == 3 and not model.tracing  # the tap is gone after the block


def planted_model():
    """A soft_attention model whose weights make every head's logit on a cell 20 * (cell brightness).

    kernel_size=1 keeps each cell's feature the max of its own 4x4 pixel block (no bleed from a
    neighbour), the annotation's dim 0 is 20 * that feature, each head's key dim 0 reads it, and
    each query is sqrt(e) on dim 0, so the scaled dot score is annotation dim 0 = 20 * brightness
    plus the sinusoid's dim 0, which lies in [-1, 1].
    """
    spec = image_spec(size=28, classes=4)
    model = build_model("soft_attention", {"channels": (2, 2), "kernel_size": 1, "embed_dim": 8, "num_heads": 2}, spec)
    e = model.head_dim
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()
        conv1, conv2 = model.trunk.layers[0], model.trunk.layers[3]
        conv1.weight[0, 0, 0, 0] = 1.0
        conv2.weight[0, 0, 0, 0] = 1.0
        model.annotate.weight[0, 0] = 20.0
        for n in range(model.num_heads):
            model.key_proj.weight[n * e, 0] = 1.0
            model.queries[n, 0] = math.sqrt(e)
    return model.eval()


@pytest.mark.parametrize("top, left", [(16, 4), (4, 20), (0, 0), (20, 20)])
def test_planted_square_gets_the_attention(top, left):
    model = planted_model()
    x = torch.zeros(2, 1, 28, 28)
    x[:, :, top : top + 8, left : left + 8] = 1.0  # an 8x8 square on whole 4x4 blocks: 2x2 cells
    with capture(model) as trace:
        model(x)
    (record,) = trace.select(kind="spatial")
    rows, cols = record.extra["grid"]
    maps = record.weights.reshape(2, model.num_heads, rows, cols)  # (b, h, y', x') row-major cells
    planted = torch.zeros(rows, cols, dtype=torch.bool)
    planted[top // 4 : top // 4 + 2, left // 4 : left // 4 + 2] = True
    mass = maps[..., planted].sum(-1)  # (b, h)
    # Logits differ by >= 20 - 2 between a bright and a dark cell, so the 45 dark cells together hold
    # at most 45 * e^-18 / 4 of the mass; 0.99 leaves room for float error and is far above the
    # 4 / 49 = 0.08 a uniform map (or a transposed grid, for squares off the diagonal) would give.
    assert (mass > 0.99).all(), mass
    assert planted.float().mean() < 0.1


@pytest.mark.parametrize("c", [1, 3])
def test_trunk_stored_channels_last_computes_what_channels_first_does(c):
    from attnlab.models.vision import ConvTrunk

    torch.manual_seed(0)
    trunk = ConvTrunk(c, (8, 16), 5)
    first = ConvTrunk(c, (8, 16), 5).to(memory_format=torch.contiguous_format)
    first.load_state_dict(trunk.state_dict())
    convs = [m for m in trunk.layers if isinstance(m, torch.nn.Conv2d)]
    assert all(m.weight.is_contiguous(memory_format=torch.channels_last) for m in convs)
    assert not convs[1].weight.is_contiguous()  # (16, 8, 5, 5): channels last is not the default layout there
    x = images(4, c, 28)
    out = trunk(x)
    expected = first.layers(x)  # channels first throughout
    assert not expected.is_contiguous(memory_format=torch.channels_last)
    assert out.is_contiguous(memory_format=torch.channels_last) and out.shape == expected.shape == (4, 16, 7, 7)
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-6)
    out.square().sum().backward()
    expected.square().sum().backward()
    for mine, theirs in zip(trunk.parameters(), first.parameters()):
        torch.testing.assert_close(mine.grad, theirs.grad, rtol=1e-4, atol=1e-6)


def test_trunk_pools_before_its_relu_and_computes_what_relu_first_does():
    from attnlab.models.vision import ConvTrunk

    torch.manual_seed(0)
    trunk = ConvTrunk(1, (8, 16), 5)
    kinds = [type(m).__name__ for m in trunk.layers]
    assert kinds == ["Conv2d", "MaxPool2d", "ReLU"] * 2
    relu_first = torch.nn.Sequential(*(layer for conv in trunk.layers[::3] for layer in
                                       (conv, torch.nn.ReLU(), torch.nn.MaxPool2d(2))))  # the same convolutions
    x = images(4, 1, 28).contiguous(memory_format=torch.channels_last)
    out, expected = trunk(x), relu_first(x)
    torch.testing.assert_close(out, expected, rtol=0, atol=0)
    weights = list(trunk.parameters())
    for mine, theirs in zip(torch.autograd.grad(out.square().sum(), weights),
                            torch.autograd.grad(expected.square().sum(), weights), strict=True):
        torch.testing.assert_close(mine, theirs, rtol=0, atol=0)


def test_channels_last_weights_save_and_load_as_ever(tmp_path):
    from attnlab.train.checkpoint import load_weights, save_weights

    model = tiny("image_cnn", image_spec())
    save_weights(tmp_path, model)
    again = build_model("image_cnn", TINY["image_cnn"], image_spec()).eval()
    load_weights(tmp_path, again)
    for (name, mine), theirs in zip(model.state_dict().items(), again.state_dict().values()):
        assert torch.equal(mine, theirs), name
    assert again.trunk.layers[0].weight.is_contiguous(memory_format=torch.channels_last)  # loaded in place
    x = images(2, 1, 28)
    torch.testing.assert_close(again(x), model(x))
