"""Image classifiers that the recurrent attention model is compared against on the same images.

Mnih, Heess, Graves, Kavukcuoglu 2014, "Recurrent Models of Visual Attention" (sec. 4.1) compare
their glimpse model with fully connected nets and with a convolutional net that see the whole
image. "soft_attention" adds the differentiable alternative to glimpses: a softmax over all
positions of a CNN's feature map (Xu et al. 2015, "Show, Attend and Tell", sec. 4.2, and
attention pooling with learned queries).

    "image_mlp"       flatten (b, c*y*x) -> num_layers x [Linear, ReLU] of hidden_dim -> classes;
                      the paper's FC baseline is 2 hidden layers of 256 ReLU units (the defaults)
    "image_cnn"       ConvTrunk -> global average pool (or flatten) -> hidden layers -> classes
    "soft_attention"  ConvTrunk -> a_j = W_a f_j + P(y_j, x_j), j over the y' * x' cells
                      alpha_n = softmax_j(q_n . (W_k a_j) / sqrt(e))    Xu et al. eq. 4-5, via `attend`
                      z_n     = sum_j alpha_n,j W_v a_j                 eq. 6, the soft (expected) context
                      logits  = head(W_o [z_1; ...; z_h])               kind "spatial" in traces

ConvTrunk, shared by the last two: per entry of `channels`, a same-padded k x k convolution, ReLU
and a 2 x 2 max-pool (pooled first, then ReLU: the same values, see ConvTrunk), so a (c, y, x)
image becomes (c', y / 2^L, x / 2^L) with L convolutions (floors at each pool). The paper's
convolutional baseline used one layer of 8 x 8 filters with stride 4 followed by fully connected
layers; here small filters with pooling play the role of the stride (the same 4x reduction with the
defaults), and the input is never resized, so the cost of the trunk grows with the image's area,
which is what the comparison with fixed-size glimpses is about. With pooling="avg" the parameter
count does not depend on the image size; "flatten" is closer to the paper's FC layers on top of the
feature map and its first Linear grows with it.

P(y, x) is a fixed 2-D sinusoid (Vaswani et al. 2017, sec. 3.5, once per axis): the first d/2
dims encode the row, the last d/2 the column, each as sin/cos pairs at geometric frequencies. It
has no parameters, so it fits any feature-map size that the spec's image gives.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from attnlab.core import Traced, attend
from attnlab.models.baselines import check_at_least, check_dropout
from attnlab.models.registry import MODELS, TaskModel
from attnlab.spec import TaskSpec

POOLINGS = ("avg", "flatten")


def check_image_spec(spec: TaskSpec, family: str) -> tuple[int, int, int]:
    """One-line ValueErrors unless the spec describes image classification; returns (c, y, x)."""
    if len(spec.image) != 3:
        raise ValueError(f"{family}: TaskSpec.image must be (c, y, x) for an image task; got {spec.image}")
    if min(spec.image) < 1:
        raise ValueError(f"{family}: TaskSpec.image sizes must be >= 1; got {spec.image}")
    if spec.answer_len != 1:
        raise ValueError(f"{family}: TaskSpec.answer_len must be 1 (one class per image); got {spec.answer_len}")
    if spec.num_outputs < 2:
        raise ValueError(f"{family}: TaskSpec.num_outputs must be >= 2 classes; got {spec.num_outputs}")
    c, y, x = spec.image
    return c, y, x


def check_images(images: Tensor, spec: TaskSpec, family: str) -> None:
    """A one-line ValueError unless images are floats of shape (b, *spec.image)."""
    if images.dim() != 4 or tuple(images.shape[1:]) != tuple(spec.image) or not images.is_floating_point():
        raise ValueError(
            f"{family}: inputs must be float images (b, {', '.join(map(str, spec.image))}); "
            f"got {images.dtype} {tuple(images.shape)}"
        )


def hidden_layers(in_dim: int, hidden_dim: int, num_layers: int, dropout: float) -> tuple[nn.Sequential, int]:
    """num_layers x [Linear, ReLU, Dropout] from in_dim; returns the stack and its output width."""
    layers: list[nn.Module] = []
    width = in_dim
    for _ in range(num_layers):
        layers += [nn.Linear(width, hidden_dim), nn.ReLU(), nn.Dropout(dropout)]
        width = hidden_dim
    return nn.Sequential(*layers), width


def check_trunk(config: ImageCNNConfig | SoftAttentionConfig, family: str, y: int, x: int) -> None:
    """A one-line ValueError when the image is too small for one cell after every pool."""
    least = 2 ** len(config.channels)
    if min(y, x) < least:
        raise ValueError(
            f"{family}: image {y}x{x} is smaller than {least}x{least}, which {len(config.channels)} 2x2 pools need"
        )


def check_conv_fields(config: ImageCNNConfig | SoftAttentionConfig) -> None:
    """One-line ValueErrors for the fields of the conv trunk (channels, kernel_size)."""
    name = type(config).__name__
    if not config.channels or min(config.channels) < 1:
        raise ValueError(f"{name}.channels: must be a non-empty tuple of widths >= 1; got {config.channels}")
    check_at_least(config, "kernel_size", 1)
    if config.kernel_size % 2 == 0:
        raise ValueError(f"{name}.kernel_size: must be odd so that same padding centres it; got {config.kernel_size}")


class ConvTrunk(nn.Module):
    """Per width in `channels`: Conv2d k x k (same padding), ReLU, MaxPool 2 x 2.

    Stored as Conv2d, MaxPool, ReLU: both keep order, so max(relu(a), relu(b)) = relu(max(a, b)) and the
    values and gradients are those of ReLU first, and ReLU then reads a quarter of the cells (a fifth off a
    training step on the sum's canvases: benchmarks/speed.py, section order).

    The convolutions' weights and the images are stored channels last, where oneDNN's CPU convolutions
    and max pooling are faster (benchmarks/speed.py, section trunk); the values are the same up to float
    rounding, and saved weights are contiguous as ever (safetensors writes a contiguous copy).

    Args:
        in_channels: c, the image's channels.
        channels: the output width of each convolution.
        kernel_size: k, odd.
    """

    def __init__(self, in_channels: int, channels: tuple[int, ...], kernel_size: int):
        super().__init__()
        layers: list[nn.Module] = []
        width = in_channels
        for out in channels:
            conv = nn.Conv2d(width, out, kernel_size, padding=kernel_size // 2)
            conv.weight = nn.Parameter(conv.weight.detach().contiguous(memory_format=torch.channels_last))
            layers += [conv, nn.MaxPool2d(2), nn.ReLU()]  # = ReLU then pooling (see above)
            width = out
        self.layers = nn.Sequential(*layers)
        self.out_channels = width

    @staticmethod
    def grid(y: int, x: int, num_convs: int) -> tuple[int, int]:
        """(y', x'): the feature map's size after num_convs floor-halving pools."""
        for _ in range(num_convs):
            y, x = y // 2, x // 2
        return y, x

    def forward(self, images: Tensor) -> Tensor:
        """images (b, c, y, x) -> features (b, c', y', x'), stored channels last."""
        return self.layers(images.contiguous(memory_format=torch.channels_last))  # (b, c', y', x')


def sinusoid_2d(
    rows: int, cols: int, dim: int, *, device: torch.device | None = None, dtype: torch.dtype = torch.float32
) -> Tensor:
    """Fixed 2-D positional encoding: row sinusoids in the first dim/2, column ones in the rest.

    Args:
        rows, cols: y', x', the grid.
        dim: d, divisible by 4 (a sin/cos pair per frequency per axis).
    Returns:
        (y' * x', d), cells in row-major order (the order of `flatten(2)` on (b, d, y', x')).
    """
    quarter = dim // 4
    freq = torch.exp(-math.log(10000.0) * torch.arange(quarter, device=device, dtype=dtype) / max(quarter, 1))  # (d/4,)

    def axis(n: int) -> Tensor:
        angle = torch.arange(n, device=device, dtype=dtype)[:, None] * freq  # (n, d/4)
        return torch.cat([angle.sin(), angle.cos()], dim=-1)  # (n, d/2)

    row = axis(rows)[:, None, :].expand(rows, cols, dim // 2)  # (y', x', d/2)
    col = axis(cols)[None, :, :].expand(rows, cols, dim // 2)  # (y', x', d/2)
    return torch.cat([row, col], dim=-1).reshape(rows * cols, dim)  # (y' * x', d)


@dataclass(frozen=True)
class ImageMLPConfig:
    hidden_dim: int = 256  # width of every hidden layer (256 ReLU units in Mnih et al. 2014)
    num_layers: int = 2  # hidden layers; 0 gives multinomial logistic regression on the pixels
    dropout: float = 0.0  # after each hidden layer's ReLU

    def __post_init__(self) -> None:
        check_at_least(self, "hidden_dim", 1)
        check_at_least(self, "num_layers", 0)
        check_dropout(self)


@MODELS.register("image_mlp")
class ImageMLP(TaskModel):
    """Fully connected net over the flattened pixels: every pixel is its own input feature."""

    Config = ImageMLPConfig

    def __init__(self, config: ImageMLPConfig, spec: TaskSpec):
        super().__init__(config, spec)
        c, y, x = check_image_spec(spec, "image_mlp")
        self.hidden, width = hidden_layers(c * y * x, config.hidden_dim, config.num_layers, config.dropout)
        self.out = nn.Linear(width, spec.num_outputs)

    def forward(self, inputs: Tensor, targets: Tensor | None = None) -> Tensor:
        """inputs (b, c, y, x) floats -> logits (b, 1, o)."""
        check_images(inputs, self.spec, "image_mlp")
        h = self.hidden(inputs.flatten(1))  # (b, c * y * x) -> (b, hidden_dim)
        return self.out(h).unsqueeze(1)  # (b, 1, o)


@dataclass(frozen=True)
class ImageCNNConfig:
    channels: tuple[int, ...] = (32, 64)  # output width of each conv (each followed by ReLU, 2x2 max-pool)
    kernel_size: int = 5  # k, odd, square filters with same padding
    pooling: str = "avg"  # "avg": global average over the feature map; "flatten": every cell a feature
    hidden_dim: int = 256  # width of the fully connected layers after pooling
    num_layers: int = 1  # fully connected hidden layers before the classes
    dropout: float = 0.0  # after each fully connected hidden layer

    def __post_init__(self) -> None:
        check_conv_fields(self)
        if self.pooling not in POOLINGS:
            raise ValueError(f"ImageCNNConfig.pooling: must be one of {POOLINGS}; got {self.pooling!r}")
        check_at_least(self, "hidden_dim", 1)
        check_at_least(self, "num_layers", 0)
        check_dropout(self)


@MODELS.register("image_cnn")
class ImageCNN(TaskModel):
    """ConvTrunk over the whole image, pooled, then fully connected layers."""

    Config = ImageCNNConfig

    def __init__(self, config: ImageCNNConfig, spec: TaskSpec):
        super().__init__(config, spec)
        c, y, x = check_image_spec(spec, "image_cnn")
        check_trunk(config, "image_cnn", y, x)
        self.trunk = ConvTrunk(c, config.channels, config.kernel_size)
        cells = math.prod(ConvTrunk.grid(y, x, len(config.channels))) if config.pooling == "flatten" else 1
        self.hidden, width = hidden_layers(
            self.trunk.out_channels * cells, config.hidden_dim, config.num_layers, config.dropout
        )
        self.out = nn.Linear(width, spec.num_outputs)

    def forward(self, inputs: Tensor, targets: Tensor | None = None) -> Tensor:
        """inputs (b, c, y, x) floats -> logits (b, 1, o)."""
        check_images(inputs, self.spec, "image_cnn")
        f = self.trunk(inputs)  # (b, c', y', x')
        f = f.mean(dim=(2, 3)) if self.config.pooling == "avg" else f.flatten(1)  # (b, c') or (b, c' * y' * x')
        return self.out(self.hidden(f)).unsqueeze(1)  # (b, 1, o)


@dataclass(frozen=True)
class SoftAttentionConfig:
    channels: tuple[int, ...] = (32, 64)  # output width of each conv of the trunk (as in image_cnn)
    kernel_size: int = 5  # k, odd, square filters with same padding
    embed_dim: int = 64  # d, width of the annotation vectors a_j; divisible by 4 and by num_heads
    num_heads: int = 4  # h, learned queries, each with its own softmax over the cells
    hidden_dim: int = 256  # width of the fully connected layers after attention
    num_layers: int = 1  # fully connected hidden layers before the classes
    dropout: float = 0.0  # on the attention weights while training and after each hidden layer

    def __post_init__(self) -> None:
        check_conv_fields(self)
        check_at_least(self, "embed_dim", 4)
        check_at_least(self, "num_heads", 1)
        if self.embed_dim % 4:
            raise ValueError(f"SoftAttentionConfig.embed_dim: must be divisible by 4; got {self.embed_dim}")
        if self.embed_dim % self.num_heads:
            raise ValueError(
                f"SoftAttentionConfig.embed_dim: must be divisible by num_heads={self.num_heads}; got {self.embed_dim}"
            )
        check_at_least(self, "hidden_dim", 1)
        check_at_least(self, "num_layers", 0)
        check_dropout(self)


@MODELS.register("soft_attention")
class SoftAttention(Traced, TaskModel):
    """Learned queries attend over the cells of a CNN feature map; the pooled vectors are classified.

    While traced, records kind "spatial": weights (b, h, 1, y' * x') in row-major cell order, with
    extra `grid=(y', x')` so that `weights.reshape(b, h, y', x')` lays them on the feature map.
    """

    Config = SoftAttentionConfig

    def __init__(self, config: SoftAttentionConfig, spec: TaskSpec):
        super().__init__(config, spec)
        c, y, x = check_image_spec(spec, "soft_attention")
        check_trunk(config, "soft_attention", y, x)
        d, h = config.embed_dim, config.num_heads
        self.num_heads, self.head_dim = h, d // h
        self.trunk = ConvTrunk(c, config.channels, config.kernel_size)
        self.grid = ConvTrunk.grid(y, x, len(config.channels))
        self.register_buffer("positions", sinusoid_2d(*self.grid, d), persistent=False)  # (j, d)
        self.annotate = nn.Linear(self.trunk.out_channels, d)  # W_a
        self.queries = nn.Parameter(torch.randn(h, self.head_dim))  # q_n, one per head
        self.key_proj = nn.Linear(d, d)  # W_k, h heads of e
        self.value_proj = nn.Linear(d, d)  # W_v, h heads of e
        self.out_proj = nn.Linear(d, d)  # W_o
        self.hidden, width = hidden_layers(d, config.hidden_dim, config.num_layers, config.dropout)
        self.out = nn.Linear(width, spec.num_outputs)

    def forward(self, inputs: Tensor, targets: Tensor | None = None) -> Tensor:
        """inputs (b, c, y, x) floats -> logits (b, 1, o)."""
        check_images(inputs, self.spec, "soft_attention")
        b, h, e = inputs.shape[0], self.num_heads, self.head_dim
        f = self.trunk(inputs).flatten(2).transpose(1, 2)  # (b, c', y', x') -> (b, j, c')
        a = self.annotate(f) + self.positions.to(f.dtype)  # (b, j, d)
        k = self.key_proj(a).view(b, -1, h, e).transpose(1, 2)  # (b, h, j, e)
        v = self.value_proj(a).view(b, -1, h, e).transpose(1, 2)  # (b, h, j, e)
        q = self.queries.to(a.dtype)[None, :, None, :].expand(b, h, 1, e)  # (b, h, 1, e)
        need = self.tracing
        z, weights = attend(
            q,
            k,
            v,
            score="scaled_dot",
            dropout=self.config.dropout if self.training else 0.0,
            need_weights=need,
        )  # (b, h, 1, e)
        if weights is not None:  # need: traced
            self.record("spatial", weights, grid=self.grid)
        z = self.out_proj(z.reshape(b, h * e))  # (b, d)
        return self.out(self.hidden(z)).unsqueeze(1)  # (b, 1, o)
