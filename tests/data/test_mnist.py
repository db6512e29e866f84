"""IDX reading and MNIST loading: round trips, every malformed file, checksums, the real files, the small set."""

import gzip
import hashlib
import os
import struct
from pathlib import Path

import numpy as np
import pytest

from attnlab.data import mnist
from attnlab.data.mnist import (
    IMAGES_MAGIC,
    LABELS_MAGIC,
    load_mnist,
    load_small_digits,
    mnist_available,
    read_idx,
)
from attnlab.errors import DataError

REAL = os.environ.get("ATTNLAB_DATA")
needs_mnist = pytest.mark.skipif(
    not mnist_available(REAL), reason="MNIST not found: set ATTNLAB_DATA to a folder holding mnist/"
)


def idx_bytes(array: np.ndarray, type_byte: int = 0x08, ndim: int | None = None) -> bytes:
    """An IDX file written field by field: two zero bytes, type, ndim, big-endian dims, the values."""
    ndim = array.ndim if ndim is None else ndim
    header = bytes([0, 0, type_byte, ndim]) + b"".join(struct.pack(">I", n) for n in array.shape)
    return header + array.astype(np.uint8).tobytes()


def write(path: Path, data: bytes, gz: bool = False) -> Path:
    path.write_bytes(gzip.compress(data) if gz else data)
    return path


def mnist_folder(root: Path, k: int = 6, labels: np.ndarray | None = None, gz: bool = True) -> Path:
    """root/mnist/ with k random train and test images; returns root."""
    rng = np.random.default_rng(0)
    folder = root / "mnist"
    folder.mkdir(parents=True, exist_ok=True)
    suffix = ".gz" if gz else ""
    for split, (images_name, labels_name) in mnist.FILES.items():
        images = rng.integers(0, 256, (k, 28, 28), dtype=np.uint8)
        tags = rng.integers(0, 10, k, dtype=np.uint8) if labels is None else labels
        write(folder / f"{images_name}{suffix}", idx_bytes(images), gz)
        write(folder / f"{labels_name}{suffix}", idx_bytes(tags), gz)
    return root


@pytest.mark.parametrize("gz", [False, True])
def test_read_idx_round_trip(tmp_path, gz):
    array = np.random.default_rng(1).integers(0, 256, (3, 5, 4), dtype=np.uint8)
    # a misleading name: gzip is recognised by its magic bytes, not its suffix
    path = write(tmp_path / ("data.idx" if gz else "data.gz"), idx_bytes(array), gz)
    out = read_idx(path, IMAGES_MAGIC)
    assert out.dtype == np.uint8 and out.shape == (3, 5, 4)
    np.testing.assert_array_equal(out, array)
    labels = np.arange(7, dtype=np.uint8)
    np.testing.assert_array_equal(read_idx(write(tmp_path / "l", idx_bytes(labels), gz), LABELS_MAGIC), labels)


def bad_files():
    images = np.zeros((2, 3, 3), np.uint8)
    good = idx_bytes(images)
    return {
        "magic": (b"\x08\x00" + good[2:], "first two bytes must be zero"),
        "type byte": (idx_bytes(images, type_byte=0x0D), "type byte 0x0d"),
        "dimension count": (idx_bytes(np.zeros(18, np.uint8)), "expected 2051"),
        "truncated": (good[:-1], "truncated"),
        "too long": (good + b"\x00", "too long"),
        "short header": (good[:10], "truncated IDX header"),
        "empty": (b"", "too short"),
    }


@pytest.mark.parametrize("fault", list(bad_files()))
@pytest.mark.parametrize("gz", [False, True])
def test_read_idx_rejects(tmp_path, fault, gz):
    data, words = bad_files()[fault]
    path = write(tmp_path / "bad-images", data, gz)
    with pytest.raises(DataError) as info:
        read_idx(path, IMAGES_MAGIC)
    message = str(info.value)
    assert message.startswith(str(path)) and words in message and "\n" not in message


def test_truncated_names_expected_and_actual_bytes(tmp_path):
    path = write(tmp_path / "x", idx_bytes(np.zeros((2, 3, 3), np.uint8))[:-5])
    with pytest.raises(DataError, match="need 18 data bytes, file holds 13"):
        read_idx(path)


def test_read_idx_missing_and_corrupt_gzip(tmp_path):
    with pytest.raises(DataError, match="no such file"):
        read_idx(tmp_path / "absent")
    path = write(tmp_path / "broken.gz", gzip.compress(idx_bytes(np.zeros(4, np.uint8)))[:-6])
    with pytest.raises(DataError, match=f"^{path}: corrupt gzip"):
        read_idx(path)


@pytest.mark.parametrize("gz", [False, True])
def test_load_mnist_from_folder(tmp_path, gz):
    root = mnist_folder(tmp_path, k=6, gz=gz)
    assert mnist_available(root)
    images, labels = load_mnist("train", root)
    assert images.shape == (6, 28, 28) and images.dtype == np.uint8
    assert labels.shape == (6,) and labels.dtype == np.int64
    name = mnist.FILES["train"][0] + (".gz" if gz else "")
    np.testing.assert_array_equal(images, read_idx(root / "mnist" / name))
    again, _ = load_mnist("train", root)
    assert again is images  # served from the cache, not read twice
    assert not images.flags.writeable and not labels.flags.writeable


def test_mnist_available(tmp_path, monkeypatch):
    assert not mnist_available(tmp_path)
    monkeypatch.delenv("ATTNLAB_DATA", raising=False)
    assert not mnist_available()
    root = mnist_folder(tmp_path)
    monkeypatch.setenv("ATTNLAB_DATA", str(root))
    assert mnist_available()
    (root / "mnist" / "t10k-labels-idx1-ubyte.gz").unlink()
    assert not mnist_available(root)


def test_load_mnist_missing_file(tmp_path):
    root = mnist_folder(tmp_path)
    (root / "mnist" / "t10k-images-idx3-ubyte.gz").unlink()
    with pytest.raises(DataError, match="t10k-images-idx3-ubyte\\[.gz\\]: no such file"):
        load_mnist("test", root)


def test_count_mismatch_names_both_files(tmp_path):
    root = mnist_folder(tmp_path, k=6)
    labels = root / "mnist" / "train-labels-idx1-ubyte.gz"
    write(labels, idx_bytes(np.zeros(5, np.uint8)), gz=True)
    with pytest.raises(DataError) as info:
        load_mnist("train", root)
    message = str(info.value)
    assert "train-images-idx3-ubyte.gz holds 6 images" in message and f"{labels} holds 5 labels" in message


def test_bad_label_names_first_index(tmp_path):
    labels = np.array([1, 2, 10, 3, 11, 4], np.uint8)
    root = mnist_folder(tmp_path, k=6, labels=labels)
    with pytest.raises(DataError, match=r"train-labels-idx1-ubyte.gz: label 10 at index 2 outside 0..9"):
        load_mnist("train", root)


def test_rows_must_be_28x28(tmp_path):
    root = mnist_folder(tmp_path)
    path = root / "mnist" / "train-images-idx3-ubyte.gz"
    write(path, idx_bytes(np.zeros((6, 20, 20), np.uint8)), gz=True)
    with pytest.raises(DataError, match=f"^{path}: images of 20x20"):
        load_mnist("train", root)


def test_labels_file_with_image_magic(tmp_path):
    root = mnist_folder(tmp_path)
    path = root / "mnist" / "t10k-labels-idx1-ubyte.gz"
    write(path, idx_bytes(np.zeros((6, 28, 28), np.uint8)), gz=True)
    with pytest.raises(DataError, match=f"^{path}: magic number 2051.*expected 2049"):
        load_mnist("test", root)


@pytest.mark.parametrize(("sums", "algorithm"), [("MD5SUMS", "md5"), ("SHA256SUMS", "sha256")])
def test_checksums(tmp_path, sums, algorithm):
    root = mnist_folder(tmp_path)
    folder = root / "mnist"
    lines = [f"{hashlib.new(algorithm, p.read_bytes()).hexdigest()}  {p.name}" for p in sorted(folder.glob("*.gz"))]
    (folder / sums).write_text("\n".join(lines) + "\n")
    load_mnist("test", root)  # every digest right
    target = folder / "t10k-labels-idx1-ubyte.gz"
    wrong = "0" * len(lines[0].split()[0])
    (folder / sums).write_text("\n".join(lines + [f"{wrong}  {target.name}"]) + "\n")
    with pytest.raises(DataError) as info:
        load_mnist("test", root)
    message = str(info.value)
    actual = hashlib.new(algorithm, target.read_bytes()).hexdigest()
    assert message.startswith(str(target)) and wrong in message and actual in message


def test_malformed_sums_file(tmp_path):
    root = mnist_folder(tmp_path)
    (root / "mnist" / "MD5SUMS").write_text("justonefield\n")
    with pytest.raises(DataError, match="MD5SUMS:1: expected"):
        load_mnist("train", root)


def test_unknown_split():
    with pytest.raises(ValueError, match="split"):
        load_mnist("validation", "/nonexistent")


@needs_mnist
def test_real_mnist():
    folder = Path(REAL) / "mnist"
    listed = mnist._checksums(folder)
    for name in (name for pair in mnist.FILES.values() for name in pair):
        assert {a for a, _, _ in listed[f"{name}.gz"]} == {"md5", "sha256"}  # both digests checked on read
    train_images, train_labels = load_mnist("train", REAL)
    test_images, test_labels = load_mnist("test", REAL)
    assert train_images.shape == (60000, 28, 28) and train_labels.shape == (60000,)
    assert test_images.shape == (10000, 28, 28) and test_labels.shape == (10000,)
    assert abs(train_images.mean() / 255 - 0.1307) < 1e-4  # the README's sanity value
    assert np.bincount(train_labels, minlength=10).min() > 5000  # every class well represented


def test_small_digits():
    train_images, train_labels = load_small_digits("train")
    test_images, test_labels = load_small_digits("test")
    assert train_images.shape[1:] == (28, 28) and train_images.dtype == np.uint8
    assert len(train_images) + len(test_images) == 1797 and len(test_images) == 360
    assert set(train_labels.tolist()) == set(range(10)) == set(test_labels.tolist())
    assert train_images.max() == 255
    ink = (np.concatenate([train_images, test_images]) > 0).any(0)  # (28, 28)
    rows, cols = np.flatnonzero(ink.any(1)), np.flatnonzero(ink.any(0))
    # the ink sits in the central 20x20, as MNIST's size-normalised digits do
    assert rows.min() >= 4 and rows.max() <= 23 and cols.min() >= 4 and cols.max() <= 23
    assert rows.max() - rows.min() >= 15


def test_small_digits_follow_the_8x8_source():
    from sklearn.datasets import load_digits

    source = load_digits()
    images, labels = load_small_digits("test")
    np.testing.assert_array_equal(labels, source.target[::5])
    # pooling the 20x20 ink back to 8x8 keeps the source's brightest and darkest cells apart
    small = source.images[::5] * (255 / 16)  # (r, 8, 8)
    ink = images[:, 4:24, 4:24].astype(float)  # (r, 20, 20)
    centres = np.round((np.arange(8) + 0.5) * 20 / 8 - 0.5).astype(int)
    sampled = ink[:, centres][:, :, centres]  # (r, 8, 8)
    assert np.corrcoef(sampled.ravel(), small.ravel())[0, 1] > 0.95
