"""attnlab.pretrained.image_features: shapes, row-major order, the cache (hits, changed files,
separate encoders and layers), errors naming the image, the command line."""

import os

import numpy as np
import pytest
import torch
from PIL import Image
from torch import Tensor, nn

from attnlab.data.flickr8k import load_image
from attnlab.errors import DataError
from attnlab.pretrained.efficientnet import encoder_id, load_efficientnet_lite0, preprocess
from attnlab.pretrained.image_features import FeatureCache, default_cache_dir, image_features, main


class CountingEncoder(nn.Module):
    """A tiny stand-in for EfficientNet-Lite0: stride 16 to D = 4, stride 32 to D = 6; counts images."""

    def __init__(self, seed: int = 0):
        super().__init__()
        torch.manual_seed(seed)
        self.patch = nn.Conv2d(3, 4, 16, stride=16)
        self.deep = nn.Conv2d(4, 6, 2, stride=2)
        self.images_seen = 0

    def feature_maps(self, images: Tensor, upto: str = "stride32") -> dict[str, Tensor]:
        self.images_seen += images.shape[0]
        maps = {"stride16": self.patch(images)}  # (b, 4, 14, 14)
        if upto == "stride32":
            maps["stride32"] = self.deep(maps["stride16"])  # (b, 6, 7, 7)
        return maps


def write_image(path, seed, size=(224, 224)):
    pixels = np.random.default_rng(seed).integers(0, 256, size=(size[1], size[0], 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path)
    return path


@pytest.fixture
def images(tmp_path):
    folder = tmp_path / "images"
    folder.mkdir()
    write_image(folder / "a.png", 0)
    write_image(folder / "b.jpg", 1)
    write_image(folder / "c.png", 2, size=(300, 200))  # resized to 224 x 224
    return folder


def test_shapes_order_and_values(images, tmp_path):
    encoder = CountingEncoder()
    names = ["a.png", "b.jpg", "c.png"]
    shallow = image_features(
        names, image_dir=images, layer="stride16", cache_dir=tmp_path / "cache", encoder=encoder, progress=False
    )
    deep = image_features(
        names, image_dir=images, layer="stride32", cache_dir=tmp_path / "cache", encoder=encoder, progress=False
    )
    assert shallow.shape == (3, 196, 4) and shallow.dtype == torch.float16
    assert deep.shape == (3, 49, 6)
    pixels = torch.stack([load_image(images / n) for n in names])  # (3, 3, 224, 224)
    with torch.no_grad():
        maps = encoder.feature_maps(preprocess(pixels))
    # a_(r * 14 + c) is row r, column c of the map
    assert torch.allclose(shallow[1, 3 * 14 + 5].float(), maps["stride16"][1, :, 3, 5], atol=1e-2, rtol=1e-3)
    assert torch.allclose(shallow.float(), maps["stride16"].flatten(2).transpose(1, 2), atol=1e-2, rtol=1e-3)
    assert torch.allclose(deep.float(), maps["stride32"].flatten(2).transpose(1, 2), atol=1e-2, rtol=1e-3)


def test_second_call_hits_the_cache(images, tmp_path):
    encoder = CountingEncoder()
    kwargs = {"image_dir": images, "cache_dir": tmp_path / "cache", "encoder": encoder, "progress": False}
    first = image_features(["a.png", "b.jpg", "a.png"], **kwargs)
    assert encoder.images_seen == 2  # a repeated image is computed once
    again = image_features(["b.jpg", "a.png"], **kwargs)
    assert encoder.images_seen == 2
    assert torch.equal(again, first[[1, 0]])  # fresh and cached features are the same float16 numbers
    image_features([images / "c.png"], **{**kwargs, "image_dir": None})  # a path, not a name
    assert encoder.images_seen == 3
    assert torch.equal(image_features(["a.png", "b.jpg", "c.png"], **kwargs)[:2], first[:2])
    assert encoder.images_seen == 3


def test_a_changed_file_is_recomputed(images, tmp_path):
    encoder = CountingEncoder()
    kwargs = {"image_dir": images, "cache_dir": tmp_path / "cache", "encoder": encoder, "progress": False}
    before = image_features(["a.png", "b.jpg"], **kwargs)
    write_image(images / "a.png", 7)
    after = image_features(["a.png", "b.jpg"], **kwargs)
    assert encoder.images_seen == 3  # only a.png again
    assert not torch.equal(after[0], before[0]) and torch.equal(after[1], before[1])


def test_a_copied_file_reads_the_cache(images, tmp_path):
    encoder = CountingEncoder()
    kwargs = {"cache_dir": tmp_path / "cache", "encoder": encoder, "progress": False}
    before = image_features(["a.png"], image_dir=images, **kwargs)
    copied = tmp_path / "copied"
    copied.mkdir()
    (copied / "a.png").write_bytes((images / "a.png").read_bytes())
    stat = (copied / "a.png").stat()
    os.utime(copied / "a.png", ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**12))  # a new time, the same bytes
    assert torch.equal(image_features(["a.png"], image_dir=copied, **kwargs), before)
    assert encoder.images_seen == 1


def test_encoders_and_layers_do_not_share_entries(images, tmp_path):
    kwargs = {"image_dir": images, "cache_dir": tmp_path / "cache", "progress": False}
    first, other = CountingEncoder(seed=0), CountingEncoder(seed=1)
    image_features(["a.png"], encoder=first, layer="stride16", **kwargs)
    image_features(["a.png"], encoder=other, layer="stride16", **kwargs)  # other weights: its own folder
    image_features(["a.png"], encoder=first, layer="stride32", **kwargs)
    assert (first.images_seen, other.images_seen) == (2, 1)
    folders = sorted(p.name for p in (tmp_path / "cache").iterdir())
    assert len(folders) == 3 and sum(f.endswith("-stride32") for f in folders) == 1
    image_features(["a.png"], encoder=first, **kwargs)  # the default layer is stride32: cached
    assert first.images_seen == 2


def test_shards_and_train_mode(images, tmp_path):
    encoder = CountingEncoder().train()
    kwargs = {"image_dir": images, "cache_dir": tmp_path / "cache", "progress": False}
    image_features(["a.png", "b.jpg", "c.png"], encoder=encoder, batch_size=1, shard_size=2, **kwargs)
    assert encoder.training  # put back as it was
    (folder,) = (tmp_path / "cache").iterdir()
    assert len(list(folder.glob("shard-*.safetensors"))) == 2  # every 2 images, then the rest
    assert len(FeatureCache(folder).index) == 3


def test_unreadable_and_missing_images_name_the_file(images, tmp_path):
    (images / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a JPEG")
    kwargs = {"image_dir": images, "cache_dir": tmp_path / "cache", "encoder": CountingEncoder(), "progress": False}
    with pytest.raises(DataError) as err:
        image_features(["a.png", "broken.jpg"], **kwargs)
    assert str(err.value).startswith(f"{images / 'broken.jpg'}: ") and "\n" not in str(err.value)
    with pytest.raises(DataError, match=r"absent.jpg: no such image file$"):
        image_features(["a.png", "absent.jpg"], **kwargs)
    (tmp_path / "cache" / "x").mkdir(parents=True)
    (tmp_path / "cache" / "x" / "shard-0.safetensors").write_bytes(b"garbage")
    with pytest.raises(DataError, match=r"shard-0.safetensors: corrupted feature shard"):
        FeatureCache(tmp_path / "cache" / "x")


def test_default_cache_dir(monkeypatch, tmp_path):
    monkeypatch.setenv("ATTNLAB_CACHE", str(tmp_path))
    assert default_cache_dir() == tmp_path / "features"
    monkeypatch.delenv("ATTNLAB_CACHE")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert default_cache_dir() == tmp_path / "home" / ".cache" / "attnlab" / "features"


def test_command_line_with_the_pretrained_encoder(tmp_path, capsys):
    data = tmp_path / "data"
    (data / "flickr8k" / "Images").mkdir(parents=True)
    for name in ("a.jpg", "b.jpg"):
        write_image(data / "flickr8k" / "Images" / name, len(name))
    rows = "".join(f"{n},A caption of {n} .\n" for n in ("a.jpg", "b.jpg"))
    (data / "flickr8k" / "captions.txt").write_text("image,caption\n" + rows)
    for split, name in (("train", "a.jpg"), ("dev", "b.jpg"), ("test", "b.jpg")):
        (data / "flickr8k" / f"Flickr_8k.{split}Images.txt").write_text(name + "\n")
    args = ["--data-dir", str(data), "--cache-dir", str(tmp_path / "cache"), "--no-progress", "--layer", "stride32"]
    assert main(args) == 0
    assert "2 images (2 computed, 0 cached), layer stride32, features (2, 49, 1280)" in capsys.readouterr().out
    assert main([*args, "--split", "val"]) == 0
    assert "1 images (0 computed, 1 cached)" in capsys.readouterr().out
    cached = image_features(
        ["a.jpg"], image_dir=data / "flickr8k" / "Images", layer="stride32", cache_dir=tmp_path / "cache"
    )
    net = load_efficientnet_lite0()
    with torch.no_grad():
        direct = net.feature_maps(preprocess(load_image(data / "flickr8k" / "Images" / "a.jpg")[None]))["stride32"]
    assert (cached[0].float() - direct.flatten(2).transpose(1, 2)[0]).abs().max() < 1e-2  # float16 of 0..6
    assert (tmp_path / "cache" / f"{encoder_id()}-stride32").is_dir()
    assert main(["--data-dir", str(tmp_path / "nowhere")]) == 2
    assert "no flickr8k/ folder" in capsys.readouterr().err
