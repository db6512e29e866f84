"""Flickr8k (Hodosh, Young & Hockenmaier 2013, "Framing Image Description as a Ranking Task"),
the captioning set of Show, Attend and Tell (Xu et al. 2015, table 1).

8,091 photographs, five captions each, and the official split of 6,000 / 1,000 / 1,000 images
(train / dev / test; "dev" is returned as "val"). Two on-disk layouts are read; the first whose
caption file exists wins:

    A (the widely used Kaggle copy; `../shared/data/flickr8k/`)
        captions.txt                       CSV, header `image,caption`, one row per caption
        Images/                            the JPEGs
    B (the original distribution)
        Flickr8k.token.txt                 `name.jpg#n<TAB>caption`, one line per caption;
                                           directly in the folder or under Flickr8k_text/
        Flicker8k_Dataset/ (sic), Flickr8k_Dataset/ or Images/   the JPEGs (first that exists)

Both hold the split lists `Flickr_8k.trainImages.txt`, `Flickr_8k.devImages.txt` and
`Flickr_8k.testImages.txt` (one file name a line), looked for beside the caption file, then in the
folder itself. Reading the index lists the image folder once and opens no image, so a bad JPEG
shows when `load_image` reads it.

The folder is `{data_dir or ATTNLAB_DATA}/flickr8k/`. Every fault is a `DataError` whose one-line
message starts with the file at fault: no recognisable layout (naming the files looked for), a
missing split list, an empty split list, a malformed caption line (with its line number), a
caption row or split entry naming an image that is not on disk, a split entry with no captions,
and (from `load_image`) a missing or unreadable image.

Captions keep their text as written; `tokenize_caption` lowercases them and keeps words of letters
and digits, the preprocessing of Karpathy & Fei-Fei's neuraltalk that published captioning results
(BLEU/METEOR on Flickr8k/30k and COCO) commonly use.
"""

from __future__ import annotations

import csv
import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torch import Tensor

from attnlab.data.babi import data_root
from attnlab.errors import DataError

SIZE = 224  # the side of the shared copy's images (and of the encoders' inputs)
SPLIT_FILES = {  # returned split -> the official list's file name
    "train": "Flickr_8k.trainImages.txt",
    "val": "Flickr_8k.devImages.txt",
    "test": "Flickr_8k.testImages.txt",
}
CSV_CAPTIONS = "captions.txt"  # layout A
TOKEN_CAPTIONS = ("Flickr8k.token.txt", "Flickr8k_text/Flickr8k.token.txt")  # layout B
IMAGE_FOLDERS = {  # caption file name -> the image folders tried, in order
    CSV_CAPTIONS: ("Images",),
    "Flickr8k.token.txt": ("Flicker8k_Dataset", "Flickr8k_Dataset", "Images"),
}
_TOKEN_LINE = re.compile(r"([^#\t]+)#(\d+)\t(.*)")  # name.jpg#n<TAB>caption
_NOT_WORD = re.compile(r"[^a-z0-9\s]+")


@dataclass(frozen=True)
class CaptionedImage:
    """One photograph and its captions."""

    name: str  # the file name, e.g. 1000268201_693b08cb0e.jpg
    path: Path  # where the JPEG is
    captions: tuple[str, ...]  # as written, in the caption file's order (five in Flickr8k)


def flickr8k_folder(data_dir: str | Path | None = None) -> Path | None:
    """`{data_dir or ATTNLAB_DATA}/flickr8k` when that folder exists, else None.

    Args:
        data_dir: the folder holding flickr8k/; None: env ATTNLAB_DATA.
    Returns:
        The folder, or None when no data folder is given or it holds no flickr8k/.
    """
    try:
        folder = data_root(data_dir) / "flickr8k"
    except ValueError:
        return None
    return folder if folder.is_dir() else None


def tokenize_caption(text: str) -> list[str]:
    """Lowercased words of letters and digits: punctuation is deleted, then the text split on spaces.

    This is neuraltalk's preprocessing (lowercase, punctuation characters removed), which the
    published captioning results use, so "A man's T-shirt ." -> ['a', 'mans', 'tshirt'].

    Args:
        text: one caption as written.
    Returns:
        The caption's words (t words), possibly none.
    """
    return _NOT_WORD.sub("", text.lower()).split()


def load_image(path: str | Path, size: int = SIZE) -> Tensor:
    """One image as RGB floats, resized (bilinear) when it is not already size x size.

    Args:
        path: an image file PIL can read (JPEG, PNG, ...).
        size: the side of the returned image.
    Returns:
        (3, size, size) float32 in [0, 1].
    Raises:
        DataError: `path: ...` for a missing or unreadable file.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such image file")
    try:
        with Image.open(path) as opened:
            image = opened.convert("RGB")  # decodes the whole file, so truncation shows here
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as error:
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise DataError(f"{path}: unreadable image ({reason})") from None
    if image.size != (size, size):
        image = image.resize((size, size), Image.Resampling.BILINEAR)
    pixels = torch.from_numpy(np.asarray(image, dtype=np.uint8).copy())  # (y, x, c)
    return pixels.permute(2, 0, 1).float() / 255.0  # (c, y, x)


def _find_layout(folder: Path) -> tuple[Path, Path]:
    """(caption file, image folder) of the first layout whose caption file is in folder."""
    if not folder.is_dir():
        raise DataError(f"{folder}: no such folder")
    for relative in (CSV_CAPTIONS, *TOKEN_CAPTIONS):
        captions = folder / relative
        if not captions.is_file():
            continue
        candidates = IMAGE_FOLDERS[captions.name]
        for name in candidates:
            if (folder / name).is_dir():
                return captions, folder / name
        tried = ", ".join(f"{name}/" for name in candidates)
        raise DataError(f"{folder}: {relative} found but no image folder ({tried})")
    looked = ", ".join((CSV_CAPTIONS, *TOKEN_CAPTIONS))
    raise DataError(f"{folder}: no Flickr8k layout, looked for {looked}")


def _read_csv(path: Path) -> list[tuple[int, str, str]]:
    """(line number, image name, caption) of every row of a layout-A captions.txt."""
    rows: list[tuple[int, str, str]] = []
    with path.open(encoding="utf-8", newline="") as f:
        reader = csv.reader(f)
        header = next(reader, None)
        if header is None or [field.strip().lower() for field in header] != ["image", "caption"]:
            raise DataError(f"{path}: line 1 must be the header 'image,caption', got {header}")
        for row in reader:
            if not row:  # a blank line
                continue
            name, caption = (row[0].strip(), row[1].strip()) if len(row) == 2 else ("", "")
            if not name or not caption:
                line = ",".join(row)[:60]
                raise DataError(f"{path}: line {reader.line_num} must be 'image,caption', got {line!r}")
            rows.append((reader.line_num, name, caption))
    return rows


def _read_tokens(path: Path) -> list[tuple[int, str, str]]:
    """(line number, image name, caption) of every line of a layout-B Flickr8k.token.txt."""
    rows: list[tuple[int, str, str]] = []
    with path.open(encoding="utf-8") as f:
        for number, raw in enumerate(f, start=1):
            line = raw.rstrip("\r\n")
            if not line.strip():
                continue
            match = _TOKEN_LINE.fullmatch(line)
            if match is None or not match.group(1).strip() or not match.group(3).strip():
                raise DataError(f"{path}: line {number} must be 'name.jpg#n<TAB>caption', got {line[:60]!r}")
            rows.append((number, match.group(1).strip(), match.group(3).strip()))
    return rows


def _read_split(path: Path, images: Path, on_disk: set[str], captions: dict[str, list[str]]) -> list[str]:
    """The image names of one split list, each checked to be on disk and to have captions."""
    names: list[str] = []
    with path.open(encoding="utf-8") as f:
        for number, raw in enumerate(f, start=1):
            name = raw.strip()
            if not name:
                continue
            if name not in on_disk:
                raise DataError(f"{path}: line {number} names {name}, which is not in {images.name}/")
            if name not in captions:
                raise DataError(f"{path}: line {number} names {name}, which has no captions")
            names.append(name)
    if not names:
        raise DataError(f"{path}: empty split list, expected one image file name a line")
    return names


def read_flickr8k(folder: str | Path) -> dict[str, list[CaptionedImage]]:
    """The three splits of a Flickr8k folder in either layout (see the module docstring).

    Args:
        folder: the flickr8k/ folder itself (see `flickr8k_folder`).
    Returns:
        {"train", "val", "test"} -> images in their split list's order (6,000 / 1,000 / 1,000
        for the official split), each with its captions in the caption file's order.
    Raises:
        DataError: one line naming the file and the fault (module docstring).
    """
    folder = Path(folder)
    caption_file, images = _find_layout(folder)
    on_disk = set(os.listdir(images))
    rows = _read_csv(caption_file) if caption_file.name == CSV_CAPTIONS else _read_tokens(caption_file)
    captions: dict[str, list[str]] = {}
    for number, name, caption in rows:
        if name not in on_disk:
            raise DataError(f"{caption_file}: line {number} names {name}, which is not in {images.name}/")
        captions.setdefault(name, []).append(caption)
    splits: dict[str, list[CaptionedImage]] = {}
    for split, file_name in SPLIT_FILES.items():
        candidates = dict.fromkeys((caption_file.parent / file_name, folder / file_name))
        found = [path for path in candidates if path.is_file()]
        if not found:
            raise DataError(f"{folder / file_name}: no such split list (looked beside {caption_file.name} too)")
        names = _read_split(found[0], images, on_disk, captions)
        splits[split] = [CaptionedImage(name, images / name, tuple(captions[name])) for name in names]
    return splits
