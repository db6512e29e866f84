"""EfficientNet-Lite0: the ImageNet convolutional network that encodes photographs for captioning.

Tan & Le 2019, "EfficientNet: Rethinking Model Scaling for Convolutional Neural Networks", table 1
(the B0 baseline, found by a MnasNet-style search), in its "Lite" form for mobile accelerators:
ReLU6 instead of swish, no squeeze-and-excitation, and the stem and head widths kept fixed when the
network is scaled (Lite0 has width and depth coefficients 1.0, so nothing is scaled anyway).

    stem      x_1 = ReLU6(BN(conv3x3_s2(image)))                  (b, 32, y/2, x/2)
    MBConv    h = ReLU6(BN(W_expand x))     1x1, channels c -> e c (skipped when e = 1)
    (sec. 4,  h = ReLU6(BN(depthwise_kxk_s(h)))
    Sandler   z = BN(W_project h)           1x1 linear bottleneck, e c -> c'
    et al.    out = x + z                   when s = 1 and c = c' (inverted residual)
    2018)
    stages    table 1 rows 2-8, as (repeats, k, s, e, c') below; the first block of a stage
              carries its stride and width, the rest keep both
    head      ReLU6(BN(conv1x1(x))), 320 -> 1280 channels                (b, 1280, y/32, x/32)
    classes   W_fc dropout(mean over y, x) + b_fc                        (b, 1000)

Stride-2 convolutions pad as TensorFlow's "SAME" does (the weights were trained there): ceil(n / s)
outputs, the odd pixel of padding at the bottom/right. Stride-1 convolutions pad (k - 1) / 2 on
every side, which is the same thing. BatchNorm keeps TensorFlow's epsilon 1e-3 and decay 0.99
(PyTorch momentum 0.01). Stochastic depth (drop connect) skips a residual branch with probability
`drop_connect * n / num_blocks` for block n, only while training, as in the paper's training.

Two feature maps serve as the captioner's annotation vectors a_i (Xu et al. 2015, sec. 3.1.1):
"stride16", the output of the fifth stage (112 channels, 14 x 14 for a 224 image: the paper's 196
locations), and "stride32", the head's output (1280 channels, 7 x 7).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

FEATURE_LAYERS = ("stride16", "stride32")  # the maps feature_maps can return, shallow first
BN_EPS = 1e-3  # TensorFlow's batch_norm_epsilon for EfficientNet
BN_MOMENTUM = 0.01  # 1 - TensorFlow's decay 0.99


@dataclass(frozen=True)
class Stage:
    """One row of table 1: `repeats` MBConv blocks, the first with `stride` and the new width."""

    repeats: int  # blocks in the stage
    kernel_size: int  # k of the depthwise convolution
    stride: int  # s of the stage's first block
    expand_ratio: int  # e, the inverted bottleneck's expansion
    out_channels: int  # c', the stage's width


LITE0_STAGES = (
    Stage(1, 3, 1, 1, 16),  # 112 x 112
    Stage(2, 3, 2, 6, 24),  # 56 x 56
    Stage(2, 5, 2, 6, 40),  # 28 x 28
    Stage(3, 3, 2, 6, 80),  # 14 x 14
    Stage(3, 5, 1, 6, 112),  # 14 x 14: "stride16"
    Stage(4, 5, 2, 6, 192),  # 7 x 7
    Stage(1, 3, 1, 6, 320),  # 7 x 7, then the head: "stride32"
)
STRIDE16_STAGE = 4  # index in LITE0_STAGES of the last stage at stride 16


@dataclass(frozen=True)
class EfficientNetConfig:
    """EfficientNet-Lite0 as trained on ImageNet; the defaults are the checkpoint's."""

    stem_channels: int = 32  # width of the stride-2 stem convolution (fixed in Lite)
    head_channels: int = 1280  # width of the last 1x1 convolution (fixed in Lite)
    num_classes: int = 1000  # ImageNet classes
    dropout: float = 0.2  # before the classifier, while training
    drop_connect: float = 0.2  # stochastic depth of the last block, while training
    stages: tuple[Stage, ...] = LITE0_STAGES  # table 1 rows 2-8


def same_padding(size: int, kernel_size: int, stride: int) -> tuple[int, int]:
    """(before, after) padding of one axis so a kxk convolution gives ceil(size / stride) outputs.

    TensorFlow's "SAME": the total is split with the extra pixel after, e.g. (0, 1) for k = 3, s = 2
    on an even size.
    """
    total = max((math.ceil(size / stride) - 1) * stride + kernel_size - size, 0)
    return total // 2, total - total // 2


class ConvNorm(nn.Module):
    """A bias-free convolution, "SAME" padded, then BatchNorm (the activation is the caller's)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1, groups: int = 1):
        super().__init__()
        self.kernel_size, self.stride = kernel_size, stride
        # stride 1 with an odd kernel: the symmetric padding the convolution does itself is "SAME"
        padding = (kernel_size - 1) // 2 if stride == 1 else 0
        self.conv = nn.Conv2d(
            in_channels, out_channels, kernel_size, stride=stride, padding=padding, groups=groups, bias=False
        )
        self.norm = nn.BatchNorm2d(out_channels, eps=BN_EPS, momentum=BN_MOMENTUM)

    def forward(self, x: Tensor) -> Tensor:
        """(b, c, y, x) -> (b, c', ceil(y / s), ceil(x / s))."""
        if self.stride > 1:
            top, bottom = same_padding(x.shape[-2], self.kernel_size, self.stride)
            left, right = same_padding(x.shape[-1], self.kernel_size, self.stride)
            x = F.pad(x, (left, right, top, bottom))  # (b, c, y + top + bottom, x + left + right)
        return self.norm(self.conv(x))  # (b, c', y', x')


class MBConv(nn.Module):
    """Mobile inverted bottleneck without squeeze-and-excitation (the Lite block)."""

    def __init__(
        self, in_channels: int, out_channels: int, kernel_size: int, stride: int, expand_ratio: int, drop: float
    ):
        super().__init__()
        hidden = in_channels * expand_ratio
        self.expand = ConvNorm(in_channels, hidden, 1) if expand_ratio != 1 else None
        self.depthwise = ConvNorm(hidden, hidden, kernel_size, stride, groups=hidden)
        self.project = ConvNorm(hidden, out_channels, 1)
        self.residual = stride == 1 and in_channels == out_channels
        self.drop = drop  # probability of skipping the branch while training (stochastic depth)

    def forward(self, x: Tensor) -> Tensor:
        """(b, c, y, x) -> (b, c', y / s, x / s)."""
        h = F.relu6(self.expand(x)) if self.expand is not None else x  # (b, e c, y, x)
        h = F.relu6(self.depthwise(h))  # (b, e c, y / s, x / s)
        z = self.project(h)  # (b, c', y / s, x / s)
        if not self.residual:
            return z
        if self.training and self.drop > 0:
            keep = torch.rand(z.shape[0], 1, 1, 1, device=z.device, dtype=z.dtype) >= self.drop  # (b, 1, 1, 1)
            z = z * keep / (1 - self.drop)  # (b, c', y, x)
        return x + z


class EfficientNetLite(nn.Module):
    """EfficientNet-Lite0: stem, seven stages of MBConv blocks, head, classifier.

    Inputs are normalised images (attnlab.pretrained.efficientnet.preprocess). Build it with
    attnlab.pretrained.efficientnet.load_efficientnet_lite0 for the ImageNet weights.
    """

    def __init__(self, config: EfficientNetConfig | None = None):
        super().__init__()
        cfg = config or EfficientNetConfig()
        self.config = cfg
        self.stem = ConvNorm(3, cfg.stem_channels, 3, stride=2)
        num_blocks = sum(stage.repeats for stage in cfg.stages)
        stages: list[nn.Sequential] = []
        width, n = cfg.stem_channels, 0
        for stage in cfg.stages:
            blocks = []
            for r in range(stage.repeats):
                stride = stage.stride if r == 0 else 1
                drop = cfg.drop_connect * n / num_blocks
                blocks.append(MBConv(width, stage.out_channels, stage.kernel_size, stride, stage.expand_ratio, drop))
                width, n = stage.out_channels, n + 1
            stages.append(nn.Sequential(*blocks))
        self.stages = nn.ModuleList(stages)
        self.head = ConvNorm(width, cfg.head_channels, 1)
        self.dropout = nn.Dropout(cfg.dropout)
        self.classifier = nn.Linear(cfg.head_channels, cfg.num_classes)

    def feature_width(self, layer: str) -> int:
        """D, the channels of the map `layer` ("stride16" or "stride32") that feature_maps returns."""
        if layer not in FEATURE_LAYERS:
            raise ValueError(f"EfficientNetLite.feature_width: layer must be one of {FEATURE_LAYERS}; got {layer!r}")
        return self.config.stages[STRIDE16_STAGE].out_channels if layer == "stride16" else self.config.head_channels

    def feature_maps(self, images: Tensor, upto: str = "stride32") -> dict[str, Tensor]:
        """The feature maps of FEATURE_LAYERS up to and including `upto`, computing no further.

        Args:
            images: (b, 3, y, x) normalised images.
            upto: "stride16" (stops after the fifth stage) or "stride32" (runs the head too).
        Returns:
            {"stride16": (b, 112, ceil(y / 16), ceil(x / 16))} and, for upto="stride32", also
            {"stride32": (b, 1280, ceil(y / 32), ceil(x / 32))}: (b, 112, 14, 14) and
            (b, 1280, 7, 7) for 224 x 224 images.
        """
        if upto not in FEATURE_LAYERS:
            raise ValueError(f"EfficientNetLite.feature_maps: upto must be one of {FEATURE_LAYERS}; got {upto!r}")
        if images.dim() != 4 or images.shape[1] != 3:
            raise ValueError(f"EfficientNetLite: images must be (b, 3, y, x); got {tuple(images.shape)}")
        x = F.relu6(self.stem(images))  # (b, 32, y/2, x/2)
        maps: dict[str, Tensor] = {}
        for s, stage in enumerate(self.stages):
            x = stage(x)  # (b, c_s, y/stride_s, x/stride_s)
            if s == STRIDE16_STAGE:
                maps["stride16"] = x  # (b, 112, y/16, x/16)
                if upto == "stride16":
                    return maps
        maps["stride32"] = F.relu6(self.head(x))  # (b, 1280, y/32, x/32)
        return maps

    def forward(self, images: Tensor) -> Tensor:
        """ImageNet logits.

        Args:
            images: (b, 3, y, x) normalised images (224 x 224 for the pretrained weights).
        Returns:
            (b, num_classes) logits.
        """
        features = self.feature_maps(images)["stride32"]  # (b, 1280, y/32, x/32)
        pooled = features.mean(dim=(2, 3))  # (b, 1280)
        return self.classifier(self.dropout(pooled))  # (b, num_classes)
