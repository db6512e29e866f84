"""MNIST (LeCun, Cortes & Burges, "The MNIST database of handwritten digits") from its IDX files.

An IDX file is a big-endian header followed by the raw values:

    bytes 0-1   zero
    byte  2     the value type (0x08: unsigned byte, the only one MNIST uses)
    byte  3     the number of dimensions n
    4 * n bytes each dimension's size (uint32)
    then prod(dims) values, row-major

so the magic number (bytes 0-3 read as one uint32) is 0x00000803 = 2051 for the image files
(k, 28, 28) and 0x00000801 = 2049 for the label files (k,). Files may be gzipped; gzip is
recognised by its magic bytes 1f 8b, not by the name.

The folder is `{data_dir or ATTNLAB_DATA}/mnist/` with the standard names
(`train-images-idx3-ubyte`, `train-labels-idx1-ubyte`, `t10k-images-idx3-ubyte`,
`t10k-labels-idx1-ubyte`, each plain or with `.gz`). When the folder holds `MD5SUMS` or
`SHA256SUMS` (`<hex>  <filename>` per line), every file read that is listed there is checked.

Without MNIST, `load_small_digits` gives scikit-learn's bundled 8x8 digits (1797 images, values
0..16), upsampled to 20x20 and centred in a 28x28 frame as MNIST centres its size-normalised
20x20 digits, so that every task and test runs on a fresh machine.

Every fault is a `DataError` whose one-line message starts with the file at fault.
Shapes: k images; (k, 28, 28) uint8 images and (k,) int64 labels.
"""

from __future__ import annotations

import gzip
import hashlib
import zlib
from pathlib import Path

import numpy as np

from attnlab.data.babi import data_root
from attnlab.errors import DataError

IMAGES_MAGIC = 0x00000803  # 2051: unsigned bytes, 3 dimensions (k, rows, cols)
LABELS_MAGIC = 0x00000801  # 2049: unsigned bytes, 1 dimension (k,)
UBYTE = 0x08  # the IDX type byte of unsigned bytes
SIDE = 28  # MNIST images are SIDE x SIDE
NUM_CLASSES = 10
FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
SUMS = {"MD5SUMS": "md5", "SHA256SUMS": "sha256"}  # checksum file -> hashlib algorithm
SMALL_TEST_EVERY = 5  # load_small_digits: every 5th image (index % 5 == 0) is a test image
SMALL_INK = 20  # load_small_digits: the 8x8 digit is upsampled to SMALL_INK x SMALL_INK

_CACHE: dict[tuple, np.ndarray] = {}  # (resolved path, size, mtime, digests) -> checked array, read-only
_SMALL: dict[str, tuple[np.ndarray, np.ndarray]] = {}  # split -> (images, labels), read-only


def _parse_idx(data: bytes, path: Path, magic: int | None) -> np.ndarray:
    """The array held by the (decompressed) IDX bytes of path; DataError on any fault."""
    if len(data) < 4:
        raise DataError(f"{path}: {len(data)} bytes, too short for an IDX header")
    found = int.from_bytes(data[:4], "big")
    if data[0] != 0 or data[1] != 0:
        raise DataError(f"{path}: not an IDX file (magic number 0x{found:08x}, its first two bytes must be zero)")
    if data[2] != UBYTE:
        raise DataError(f"{path}: IDX type byte 0x{data[2]:02x}, expected 0x08 (unsigned byte)")
    ndim = data[3]
    if magic is not None and found != magic:
        raise DataError(f"{path}: magic number {found} ({ndim} dimensions), expected {magic} ({magic & 0xFF})")
    if ndim < 1:
        raise DataError(f"{path}: IDX header gives 0 dimensions")
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DataError(f"{path}: truncated IDX header, expected {header} bytes, got {len(data)}")
    dims = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    expected = int(np.prod(dims, dtype=np.int64))
    actual = len(data) - header
    if actual != expected:
        fault = "truncated" if actual < expected else "too long"
        raise DataError(f"{path}: {fault}, dims {dims} need {expected} data bytes, file holds {actual}")
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(dims)  # read-only view


def _decompress(raw: bytes, path: Path) -> bytes:
    """raw itself, or its gunzipped bytes when it starts with the gzip magic 1f 8b."""
    if raw[:2] != b"\x1f\x8b":
        return raw
    try:
        return gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as error:
        raise DataError(f"{path}: corrupt gzip data ({error})") from None


def read_idx(path: str | Path, magic: int | None = None) -> np.ndarray:
    """Read one IDX file of unsigned bytes, gzipped or not.

    Args:
        path: the file.
        magic: the magic number the file must have (IMAGES_MAGIC, LABELS_MAGIC); None: any
            unsigned-byte IDX file.
    Returns:
        uint8 array of the header's dims, e.g. (k, 28, 28) or (k,); read-only.
    Raises:
        DataError: `path: ...` for a missing file, bad gzip, bad magic, type byte or dimension
            count, or data whose length differs from the product of the dims.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    return _parse_idx(_decompress(path.read_bytes(), path), path, magic)


def _checksums(folder: Path) -> dict[str, list[tuple[str, str, Path]]]:
    """file name -> [(algorithm, expected hex digest, the sums file that lists it)]."""
    listed: dict[str, list[tuple[str, str, Path]]] = {}
    for sums_name, algorithm in SUMS.items():
        sums = folder / sums_name
        if not sums.is_file():
            continue
        for number, line in enumerate(sums.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
            if not line.strip():
                continue
            fields = line.split(maxsplit=1)
            if len(fields) != 2:
                raise DataError(f"{sums}:{number}: expected '<hex digest>  <file name>', got {line[:60]!r}")
            digest, name = fields[0].lower(), fields[1].strip().lstrip("*")
            listed.setdefault(name, []).append((algorithm, digest, sums))
    return listed


def _read_checked(path: Path, magic: int, listed: dict[str, list[tuple[str, str, Path]]]) -> np.ndarray:
    """read_idx with the folder's checksums verified, cached by path, size, modification time and digests."""
    stat = path.stat()
    checks = listed.get(path.name, [])
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns, tuple((a, d) for a, d, _ in checks))
    if key in _CACHE:
        return _CACHE[key]
    raw = path.read_bytes()
    for algorithm, expected, sums in checks:
        actual = hashlib.new(algorithm, raw).hexdigest()
        if actual != expected:
            raise DataError(f"{path}: {algorithm} mismatch, {sums.name} expects {expected}, file has {actual}")
    array = _parse_idx(_decompress(raw, path), path, magic)
    _CACHE[key] = array
    return array


def _find(folder: Path, name: str) -> Path:
    """folder/name.gz or folder/name, whichever exists (the .gz first); DataError naming both."""
    for candidate in (folder / f"{name}.gz", folder / name):
        if candidate.is_file():
            return candidate
    raise DataError(f"{folder / name}[.gz]: no such file")


def mnist_dir(data_dir: str | Path | None = None) -> Path:
    """`data_root(data_dir) / "mnist"` (ValueError when neither data_dir nor ATTNLAB_DATA is set)."""
    return data_root(data_dir) / "mnist"


def load_mnist(split: str, data_dir: str | Path | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The MNIST images and labels of one split, checked and cached in memory.

    Args:
        split: "train" or "test"; subsets of any size are accepted.
        data_dir: the folder holding mnist/; None: env ATTNLAB_DATA.
    Returns:
        images (k, 28, 28) uint8 and labels (k,) int64 in 0..9, both read-only.
    Raises:
        ValueError: unknown split, or no data folder given.
        DataError: a file is absent or malformed, fails its checksum, the image and label counts
            differ, images are not 28x28, or a label lies outside 0..9.
    """
    if split not in FILES:
        raise ValueError(f"split must be one of {tuple(FILES)}, got {split!r}")
    folder = mnist_dir(data_dir)
    listed = _checksums(folder)
    images_path, labels_path = (_find(folder, name) for name in FILES[split])
    images = _read_checked(images_path, IMAGES_MAGIC, listed)  # (k, rows, cols)
    labels = _read_checked(labels_path, LABELS_MAGIC, listed)  # (k,)
    if images.shape[1:] != (SIDE, SIDE):
        raise DataError(f"{images_path}: images of {images.shape[1]}x{images.shape[2]}, expected {SIDE}x{SIDE}")
    if len(images) != len(labels):
        raise DataError(f"{images_path} holds {len(images)} images but {labels_path} holds {len(labels)} labels")
    bad = np.flatnonzero(labels >= NUM_CLASSES)
    if len(bad):
        raise DataError(f"{labels_path}: label {labels[bad[0]]} at index {bad[0]} outside 0..{NUM_CLASSES - 1}")
    labels = labels.astype(np.int64)  # (k,)
    labels.flags.writeable = False
    return images, labels


def mnist_available(data_dir: str | Path | None = None) -> bool:
    """True when a data folder is given and its mnist/ holds all four files (plain or .gz)."""
    try:
        folder = mnist_dir(data_dir)
    except ValueError:
        return False
    names = [name for pair in FILES.values() for name in pair]
    return all((folder / f"{n}.gz").is_file() or (folder / n).is_file() for n in names)


def load_small_digits(split: str) -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's bundled 8x8 digits as MNIST-like 28x28 images (no download).

    Each 8x8 image (values 0..16) is upsampled bilinearly to 20x20, scaled to 0..255 and padded by
    4 on every side, so its ink sits in the central 20x20 as an MNIST digit's does. Image i is a
    test image when i % 5 == 0 (360 test, 1437 train).

    Args:
        split: "train" or "test".
    Returns:
        images (k, 28, 28) uint8 and labels (k,) int64 in 0..9, both read-only.
    """
    if split not in FILES:
        raise ValueError(f"split must be one of {tuple(FILES)}, got {split!r}")
    if split not in _SMALL:
        import torch
        import torch.nn.functional as F
        from sklearn.datasets import load_digits

        bunch = load_digits()
        small = torch.tensor(bunch.images, dtype=torch.float32).unsqueeze(1)  # (k, 1, 8, 8)
        ink = (SMALL_INK, SMALL_INK)
        large = F.interpolate(small, size=ink, mode="bilinear", align_corners=False)  # (k, 1, 20, 20)
        pad = (SIDE - SMALL_INK) // 2
        framed = F.pad(large.squeeze(1), (pad, pad, pad, pad))  # (k, 28, 28)
        images = (framed * (255.0 / 16.0)).round().clamp(0, 255).to(torch.uint8).numpy()
        labels = np.asarray(bunch.target, dtype=np.int64)  # (k,)
        is_test = np.arange(len(labels)) % SMALL_TEST_EVERY == 0  # (k,)
        for name, rows in (("test", is_test), ("train", ~is_test)):
            pair = (images[rows], labels[rows])
            for array in pair:
                array.flags.writeable = False
            _SMALL[name] = pair
    return _SMALL[split]
