"""attnlab.models.efficientnet: stage shapes and strides, "SAME" padding, BatchNorm, feature maps."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from attnlab.models.efficientnet import (
    BN_EPS,
    BN_MOMENTUM,
    FEATURE_LAYERS,
    ConvNorm,
    EfficientNetLite,
    same_padding,
)

# (channels, side) after each stage of a 224 x 224 image: strides 2, 4, 8, 16, 16, 32, 32
STAGE_SHAPES = [(16, 112), (24, 56), (40, 28), (80, 14), (112, 14), (192, 7), (320, 7)]


@pytest.fixture(scope="module")
def net():
    torch.manual_seed(0)
    return EfficientNetLite().eval()


def test_stage_shapes_and_strides(net):
    images = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        x = F.relu6(net.stem(images))
        assert x.shape == (1, 32, 112, 112)
        for stage, (channels, side) in zip(net.stages, STAGE_SHAPES, strict=True):
            x = stage(x)
            assert x.shape == (1, channels, side, side)
        maps = net.feature_maps(images)
        logits = net(images)
    assert torch.equal(maps["stride32"], F.relu6(net.head(x)))
    assert maps["stride16"].shape == (1, 112, 14, 14)
    assert maps["stride32"].shape == (1, 1280, 7, 7)
    assert logits.shape == (1, 1000)
    assert len(net.stages) == 7 and sum(len(s) for s in net.stages) == 16  # table 1: 16 MBConv blocks


def test_feature_maps_stop_at_the_layer_asked_for(net):
    images = torch.randn(1, 3, 96, 96)
    with torch.no_grad():
        shallow = net.feature_maps(images, upto="stride16")
        deep = net.feature_maps(images, upto="stride32")
    assert list(shallow) == ["stride16"] and list(deep) == list(FEATURE_LAYERS)
    assert torch.equal(shallow["stride16"], deep["stride16"])
    with pytest.raises(ValueError, match="upto must be one of"):
        net.feature_maps(images, upto="stride8")


def test_odd_sizes_give_ceil_division(net):
    with torch.no_grad():
        maps = net.feature_maps(torch.randn(1, 3, 100, 130))
    assert maps["stride16"].shape == (1, 112, 7, 9)  # ceil(100 / 16), ceil(130 / 16)
    assert maps["stride32"].shape == (1, 1280, 4, 5)


def test_same_padding_puts_the_odd_pixel_after():
    assert same_padding(224, 3, 2) == (0, 1)
    assert same_padding(56, 5, 2) == (1, 2)
    assert same_padding(7, 3, 2) == (1, 1)  # odd size: ceil(7 / 2) = 4 outputs need 2 pixels
    assert same_padding(14, 5, 1) == (2, 2)


def test_stride2_convolution_is_tensorflow_same():
    # a 3 x 3 kernel that copies its centre: TensorFlow's SAME (pad 0 before, 1 after) centres
    # output i on input 2i + 1; symmetric padding would centre it on 2i
    layer = ConvNorm(1, 1, 3, stride=2).eval()
    with torch.no_grad():
        layer.conv.weight.zero_()
        layer.conv.weight[0, 0, 1, 1] = 1.0
        layer.norm.running_var.fill_(1.0 - BN_EPS)  # BN becomes the identity
    image = torch.arange(64.0).view(1, 1, 8, 8)
    out = layer(image)
    assert out.shape == (1, 1, 4, 4)
    assert torch.allclose(out, image[:, :, 1::2, 1::2])


def test_batchnorm_settings_and_eval_mode(net):
    norms = [m for m in net.modules() if isinstance(m, nn.BatchNorm2d)]
    assert len(norms) == 2 + 3 * 16 - 1  # stem, head, three per block but the first has no expansion
    assert all(m.eps == BN_EPS and m.momentum == BN_MOMENTUM for m in norms)
    torch.manual_seed(1)
    images = torch.randn(3, 3, 64, 64)
    before = [m.running_mean.clone() for m in norms]
    with torch.no_grad():
        alone = net.feature_maps(images[:1])["stride32"]
        batched = net.feature_maps(images)["stride32"]
    # eval: running statistics, so an image's features do not depend on its batch, and stay put
    assert torch.allclose(alone, batched[:1], atol=1e-5)
    assert all(torch.equal(m.running_mean, b) for m, b in zip(norms, before))
    trained = EfficientNetLite().train()
    trained.feature_maps(images, upto="stride16")  # train mode: batch statistics update the running ones
    assert not torch.equal(trained.stem.norm.running_mean, torch.zeros(32))


def test_gradients_reach_the_stem_when_fine_tuning():
    torch.manual_seed(2)
    net = EfficientNetLite().train()
    net(torch.randn(2, 3, 64, 64)).logsumexp(-1).sum().backward()
    assert net.stem.conv.weight.grad is not None and net.stem.conv.weight.grad.abs().sum() > 0


def test_drop_connect_only_while_training():
    torch.manual_seed(3)
    net = EfficientNetLite()
    block = net.stages[5][1]  # block 12 of 16 (after 1 + 2 + 2 + 3 + 3 + 1), a residual one
    assert block.residual and block.drop == pytest.approx(0.2 * 12 / 16)
    x = torch.randn(8, 192, 4, 4)
    block.eval()
    assert torch.equal(block(x), block(x))
    block.train()
    outs = torch.stack([block(x) for _ in range(8)])  # (8 draws, b, c, y, x)
    assert (outs - outs[0]).abs().amax() > 0  # the branch is sometimes skipped
