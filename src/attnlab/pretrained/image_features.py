"""Image features for captioning: an encoder's spatial feature map, computed once per image, cached.

Show, Attend and Tell (Xu et al. 2015, sec. 3.1.1) attends over L annotation vectors a_i in R^D,
one per location of a convolutional feature map, "row-major" here: a_(r * x + c) is row r, column
c. With EfficientNet-Lite0 (attnlab.pretrained.efficientnet) on 224 x 224 images:

    layer="stride32"  the head's ReLU6 output, L = 7 x 7 = 49, D = 1280     (the most semantic map
                      ImageNet trained; the default: a captioner reading it scores much higher,
                      BLEU-4 18.4 against 12.9 after two passes, docs/captioning.md; its 7 x 7
                      attention is coarser than the paper's; 125 kB an image)
    layer="stride16"  the fifth stage's output, L = 14 x 14 = 196, D = 112   (the paper's 196
                      locations of VGG's conv5_4: attention maps as fine as the paper's, and the
                      smallest cache, 43 kB an image)

Cache layout: `{cache_dir}/{encoder id}-{layer}/shard-*.safetensors`. Each shard holds one float16
tensor (L, D) per image, named `{file name}@{the first 16 hex of its bytes' sha256}`, so an edited
or replaced file gets a new name and is computed again (the stale entry stays until the folder is
deleted), while a copy of the same file (a data folder copied afresh, with new modification times)
reads the cache; hashing Flickr8k's 8,091 files takes about half a second. The encoder id names the
weights (`encoder_id()`: "efficientnet-lite0-" + the first 12 hex of the .pth's sha256; a network
passed as `encoder=` is named by a hash of its state dict), so a fine-tuned or different encoder
never reads another's features. Features are stored and
returned as float16 (relative error about 5e-4; the 8,091 Flickr8k images take about 355 MB at
stride 16 and 1.0 GB at stride 32), whether they were just computed or read back, so both calls
return the same numbers. New features are written every `shard_size` images and at the end, each
shard to a temporary name then renamed, so an interrupted run keeps what it finished. A shard is
read through safetensors' memory map, one tensor per image, so any subset loads without reading
the rest.

The default cache folder is `$ATTNLAB_CACHE/features` when ATTNLAB_CACHE is set, else
`~/.cache/attnlab/features`.

Run over a whole Flickr8k folder (prints seconds, images/s, and the cache's size):

    python -m attnlab.pretrained.image_features --data-dir ../shared/data --layer stride32
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import cast

import torch
from safetensors import safe_open
from safetensors.torch import save_file
from torch import Tensor, nn

from attnlab.data.flickr8k import SIZE, flickr8k_folder, load_image, read_flickr8k
from attnlab.errors import DataError
from attnlab.models.efficientnet import FEATURE_LAYERS
from attnlab.pretrained.efficientnet import encoder_id, load_efficientnet_lite0, preprocess
from attnlab.progress import progress_bar

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")  # files `--split all` takes from the image folder


def default_cache_dir() -> Path:
    """`$ATTNLAB_CACHE/features`, else `~/.cache/attnlab/features`."""
    root = os.environ.get("ATTNLAB_CACHE")
    return Path(root) / "features" if root else Path.home() / ".cache" / "attnlab" / "features"


class FeatureCache:
    """The shards of one (encoder, layer) folder: image key -> (L, D) float16 tensor."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.index: dict[str, Path] = {}  # image key -> the shard holding it
        for shard in sorted(folder.glob("shard-*.safetensors")):
            try:
                with safe_open(str(shard), framework="pt") as f:
                    self.index.update(dict.fromkeys(f.keys(), shard))
            except Exception as err:  # safetensors raises its own SafetensorError on a damaged file
                reason = str(err).splitlines()[0] if str(err) else type(err).__name__
                raise DataError(f"{shard}: corrupted feature shard, delete it to recompute ({reason})") from None

    def __contains__(self, key: str) -> bool:
        return key in self.index

    def get(self, keys: Sequence[str]) -> dict[str, Tensor]:
        """The features of `keys` (all in the cache), reading each shard once."""
        by_shard: dict[Path, list[str]] = {}
        for key in keys:
            by_shard.setdefault(self.index[key], []).append(key)
        found: dict[str, Tensor] = {}
        for shard, wanted in by_shard.items():
            with safe_open(str(shard), framework="pt") as f:
                found.update({key: f.get_tensor(key) for key in wanted})
        return found

    def put(self, features: dict[str, Tensor]) -> None:
        """Write one new shard (to a temporary name, then renamed) and index it."""
        if not features:
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        shard = self.folder / f"shard-{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:8]}.safetensors"
        partial = shard.with_suffix(".tmp")
        save_file({key: value.contiguous() for key, value in features.items()}, str(partial))
        partial.replace(shard)
        self.index.update(dict.fromkeys(features, shard))


def image_key(path: Path) -> str:
    """`name@sha256` (its first 16 hex) of an image file's bytes; a DataError naming it when it is
    missing or unreadable."""
    if not path.is_file():
        raise DataError(f"{path}: no such image file")
    try:
        digest = hashlib.sha256(path.read_bytes()).hexdigest()[:16]
    except OSError as err:
        raise DataError(f"{path}: cannot read ({err.strerror or err})") from None
    return f"{path.name}@{digest}"


def weights_id(encoder: nn.Module) -> str:
    """A cache name for a network passed in: its class name and a sha256 of its state dict."""
    digest = hashlib.sha256()
    for name, value in encoder.state_dict().items():
        digest.update(name.encode())
        digest.update(value.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    return f"{type(encoder).__name__}-{digest.hexdigest()[:12]}"


def image_features(
    images: Sequence[str | Path],
    *,
    image_dir: str | Path | None = None,
    layer: str = "stride32",
    cache_dir: str | Path | None = None,
    batch_size: int = 4,
    progress: bool = True,
    encoder: nn.Module | None = None,
    shard_size: int = 1024,
) -> Tensor:
    """The annotation vectors of each image, from the cache or computed (and cached) once.

    Args:
        images: n image paths, or file names inside `image_dir`.
        image_dir: the folder relative names are in; None: as given (relative to the working folder).
        layer: "stride32" (L = 49, D = 1280) or "stride16" (L = 196, D = 112) for 224 x 224 images.
        cache_dir: the cache root; None: `default_cache_dir()`.
        batch_size: images per forward pass; 4 suits a CPU, where larger batches measured slower
            per image (their activations are allocated afresh from the kernel each pass).
        progress: show a progress bar over the images being computed.
        encoder: a network with `feature_maps(images, upto=layer) -> {layer: (b, D, y, x)}` taking
            `preprocess`ed images; None: EfficientNet-Lite0 with its ImageNet weights (loaded only
            when some image is not cached yet). It runs in eval mode, without gradients.
        shard_size: new features are written to the cache every this many images.
    Returns:
        (n, L, D) float16, a_i row-major over the feature map, in the order of `images`.
    Raises:
        DataError: `path: ...` for a missing or unreadable image, or a damaged cache shard.
    """
    features, _ = _features(images, image_dir, layer, cache_dir, batch_size, progress, encoder, shard_size)
    return features


def _features(
    images: Sequence[str | Path],
    image_dir: str | Path | None,
    layer: str,
    cache_dir: str | Path | None,
    batch_size: int,
    progress: bool,
    encoder: nn.Module | None,
    shard_size: int,
) -> tuple[Tensor, int]:
    """image_features, and how many images it computed (not found in the cache)."""
    if layer not in FEATURE_LAYERS:
        raise ValueError(f"image_features: layer must be one of {FEATURE_LAYERS}; got {layer!r}")
    if batch_size < 1 or shard_size < 1:
        raise ValueError(f"image_features: batch_size and shard_size must be >= 1; got {batch_size}, {shard_size}")
    if not images:
        raise ValueError("image_features: no images given")
    paths = [Path(image_dir) / p if image_dir is not None else Path(p) for p in images]
    keys = [image_key(path) for path in paths]
    name = weights_id(encoder) if encoder is not None else encoder_id()
    cache = FeatureCache(Path(cache_dir or default_cache_dir()) / f"{name}-{layer}")
    todo = {key: path for key, path in zip(keys, paths) if key not in cache}  # deduplicated, in order
    fresh: dict[str, Tensor] = {}
    if todo:
        net = encoder if encoder is not None else load_efficientnet_lite0()
        fresh = _compute(net, list(todo.items()), layer, cache, batch_size, shard_size, progress)
    stored = cache.get([key for key in dict.fromkeys(keys) if key not in fresh])
    found = stored | fresh
    return torch.stack([found[key] for key in keys]), len(todo)  # (n, L, D)


def _compute(
    net: nn.Module,
    todo: list[tuple[str, Path]],
    layer: str,
    cache: FeatureCache,
    batch_size: int,
    shard_size: int,
    progress: bool,
) -> dict[str, Tensor]:
    """Run `net` over the images in `todo`, writing shards to `cache`; key -> (L, D) float16."""
    feature_maps = cast(Callable[..., dict[str, Tensor]], net.feature_maps)
    device = next(iter(net.parameters()), torch.empty(0)).device
    was_training = net.training
    net.eval()  # BatchNorm with its running statistics: an image's features never depend on its batch
    computed: dict[str, Tensor] = {}
    pending: dict[str, Tensor] = {}
    bar = progress_bar(total=len(todo), desc=f"{layer} features", unit="img", enabled=progress)
    try:
        for start in range(0, len(todo), batch_size):
            chunk = todo[start : start + batch_size]
            pixels = torch.stack([load_image(path, SIZE) for _, path in chunk]).to(device)  # (b, 3, 224, 224)
            with torch.no_grad():
                maps = feature_maps(preprocess(pixels), upto=layer)[layer]  # (b, D, y, x)
            vectors = maps.flatten(2).transpose(1, 2).to("cpu", torch.float16)  # (b, L, D)
            for (key, _), a in zip(chunk, vectors):
                pending[key] = a.clone()  # (L, D), its own storage for the shard
            if len(pending) >= shard_size:
                cache.put(pending)
                computed |= pending
                pending = {}
            bar.update(len(chunk))
        cache.put(pending)
        computed |= pending
    finally:
        bar.close()
        net.train(was_training)
    return computed


def _folder_size(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.glob("shard-*.safetensors"))


def main(argv: Sequence[str] | None = None) -> int:
    """Compute (or check) the cached features of every image of a Flickr8k folder or split."""
    parser = argparse.ArgumentParser(
        prog="python -m attnlab.pretrained.image_features",
        description="Cache EfficientNet-Lite0 feature maps of Flickr8k images; prints seconds, images/s and cache size.",
    )
    parser.add_argument("--data-dir", type=Path, help="folder holding flickr8k/ (default: env ATTNLAB_DATA)")
    parser.add_argument("--split", choices=("all", "train", "val", "test"), default="all", help="images to encode")
    parser.add_argument("--layer", choices=FEATURE_LAYERS, default="stride32", help="feature map (default stride32)")
    parser.add_argument(
        "--cache-dir", type=Path, help="cache root (default: $ATTNLAB_CACHE/features or ~/.cache/attnlab/features)"
    )
    parser.add_argument("--batch-size", type=int, default=4, help="images per forward pass (default 4)")
    parser.add_argument("--threads", type=int, help="torch intra-op threads (default: torch's)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    try:
        folder = flickr8k_folder(args.data_dir)
        if folder is None:
            raise DataError(f"{args.data_dir or '$ATTNLAB_DATA'}: no flickr8k/ folder (give --data-dir)")
        splits = read_flickr8k(folder)
        if args.split == "all":
            image_dir = splits["train"][0].path.parent
            paths = sorted(p for p in image_dir.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        else:
            paths = [image.path for image in splits[args.split]]
        run = (paths, None, args.layer, args.cache_dir, args.batch_size)
        started = time.perf_counter()
        features, computed = _features(*run, not args.no_progress, None, 1024)
        seconds = time.perf_counter() - started
        started = time.perf_counter()
        _features(*run, False, None, 1024)  # everything is cached now: the time to read a split back
        reload = time.perf_counter() - started
    except DataError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    cache = Path(args.cache_dir or default_cache_dir()) / f"{encoder_id()}-{args.layer}"
    print(
        f"{len(paths)} images ({computed} computed, {len(paths) - computed} cached), layer {args.layer}, "
        f"features {tuple(features.shape)} {features.dtype}, {torch.get_num_threads()} threads: "
        f"{seconds:.1f} s, {len(paths) / seconds:.1f} images/s; read back from the cache in {reload:.2f} s"
    )
    print(f"cache {cache}: {_folder_size(cache) / 1e6:.0f} MB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
