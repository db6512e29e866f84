"""Flickr8k reading: both layouts from tiny hand-made folders, every bad file, images, tokens, the real folder."""

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from attnlab.data.flickr8k import (
    CaptionedImage,
    flickr8k_folder,
    load_image,
    read_flickr8k,
    tokenize_caption,
)
from attnlab.errors import DataError

REAL = flickr8k_folder()  # from env ATTNLAB_DATA
needs_real = pytest.mark.skipif(
    REAL is None, reason="Flickr8k not found: set ATTNLAB_DATA to a folder holding flickr8k/"
)

SPLITS = {"train": ["a.jpg", "b.jpg", "c.jpg"], "dev": ["d.jpg"], "test": ["e.png"]}
NAMES = [name for names in SPLITS.values() for name in names]


def caption_of(name: str, n: int) -> str:
    return f'A "{name}" picture, number {n} .'  # quotes and a comma exercise the CSV quoting


def write_images(folder: Path, names: list[str]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for i, name in enumerate(names):
        pixels = np.full((6, 5, 3), 40 * i, dtype=np.uint8)
        Image.fromarray(pixels).save(folder / name)


def write_splits(folder: Path) -> None:
    for split, names in SPLITS.items():
        (folder / f"Flickr_8k.{split}Images.txt").write_text("".join(f"{n}\n" for n in names))


def layout_a(root: Path) -> Path:
    """root/flickr8k/ as the shared copy: captions.txt (CSV), Images/, the split lists."""
    import csv

    folder = root / "flickr8k"
    write_images(folder / "Images", NAMES)
    with (folder / "captions.txt").open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["image", "caption"])
        for name in NAMES:
            writer.writerows([name, caption_of(name, n)] for n in range(5))
    write_splits(folder)
    return folder


def layout_b(root: Path, text_folder: str = "Flickr8k_text", images: str = "Flicker8k_Dataset") -> Path:
    """root/flickr8k/ as the original distribution: Flickr8k.token.txt and split lists, images."""
    folder = root / "flickr8k"
    write_images(folder / images, NAMES)
    text = folder / text_folder
    text.mkdir(parents=True, exist_ok=True)
    lines = [f"{name}#{n}\t{caption_of(name, n)}\n" for name in NAMES for n in range(5)]
    (text / "Flickr8k.token.txt").write_text("".join(lines))
    write_splits(text)
    return folder


def check(splits: dict[str, list[CaptionedImage]], folder: Path, images: str) -> None:
    assert list(splits) == ["train", "val", "test"]
    assert [c.name for c in splits["train"]] == SPLITS["train"]
    assert [c.name for c in splits["val"]] == SPLITS["dev"]
    assert [c.name for c in splits["test"]] == SPLITS["test"]
    for items in splits.values():
        for item in items:
            assert item.path == folder / images / item.name and item.path.is_file()
            assert item.captions == tuple(caption_of(item.name, n) for n in range(5))


def test_layout_a(tmp_path):
    folder = layout_a(tmp_path)
    check(read_flickr8k(folder), folder, "Images")


@pytest.mark.parametrize(("text_folder", "images"), [("Flickr8k_text", "Flicker8k_Dataset"), (".", "Images")])
def test_layout_b(tmp_path, text_folder, images):
    folder = layout_b(tmp_path, text_folder, images)
    check(read_flickr8k(folder), folder, images)


def test_folder_from_data_dir_and_env(tmp_path, monkeypatch):
    monkeypatch.delenv("ATTNLAB_DATA", raising=False)
    assert flickr8k_folder() is None
    assert flickr8k_folder(tmp_path) is None  # no flickr8k/ there
    folder = layout_a(tmp_path)
    assert flickr8k_folder(tmp_path) == folder
    monkeypatch.setenv("ATTNLAB_DATA", str(tmp_path))
    assert flickr8k_folder() == folder


def one_line(error: pytest.ExceptionInfo, *parts: str) -> str:
    message = str(error.value)
    assert "\n" not in message
    for part in parts:
        assert part in message, (part, message)
    return message


def replace_line(path: Path, number: int, text: str) -> None:
    lines = path.read_text().splitlines(keepends=True)
    lines[number - 1] = text
    path.write_text("".join(lines))


def test_split_names_missing_image(tmp_path):
    folder = layout_a(tmp_path)
    with (folder / "Flickr_8k.testImages.txt").open("a") as f:
        f.write("zzz.jpg\n")
    with pytest.raises(DataError) as error:
        read_flickr8k(folder)
    one_line(error, str(folder / "Flickr_8k.testImages.txt"), "line 2", "zzz.jpg", "not in Images/")


def test_caption_row_of_deleted_image(tmp_path):
    folder = layout_a(tmp_path)
    (folder / "Images" / "d.jpg").unlink()
    with pytest.raises(DataError) as error:
        read_flickr8k(folder)
    one_line(error, str(folder / "captions.txt"), "line 17", "d.jpg", "not in Images/")


def test_caption_row_without_image_on_disk(tmp_path):
    folder = layout_b(tmp_path)
    token = folder / "Flickr8k_text" / "Flickr8k.token.txt"
    with token.open("a") as f:
        f.write("ghost.jpg#0\tA picture nobody kept .\n")
    with pytest.raises(DataError) as error:
        read_flickr8k(folder)
    one_line(error, str(token), f"line {len(NAMES) * 5 + 1}", "ghost.jpg", "Flicker8k_Dataset/")


def test_split_names_image_without_captions(tmp_path):
    folder = layout_a(tmp_path)
    write_images(folder / "Images", ["lonely.jpg"])
    (folder / "Flickr_8k.trainImages.txt").write_text("a.jpg\nlonely.jpg\n")
    with pytest.raises(DataError) as error:
        read_flickr8k(folder)
    one_line(error, str(folder / "Flickr_8k.trainImages.txt"), "line 2", "lonely.jpg", "no captions")


@pytest.mark.parametrize("line", ["b.jpg\tno hash\n", "b.jpg#x\tbad number\n", "b.jpg#0\t \n", "#0\tno name\n"])
def test_malformed_token_line(tmp_path, line):
    folder = layout_b(tmp_path)
    token = folder / "Flickr8k_text" / "Flickr8k.token.txt"
    replace_line(token, 7, line)
    with pytest.raises(DataError) as error:
        read_flickr8k(folder)
    one_line(error, str(token), "line 7", "name.jpg#n<TAB>caption")


@pytest.mark.parametrize("line", ["b.jpg\n", "b.jpg,one,two\n", ",a caption\n"])
def test_malformed_csv_line(tmp_path, line):
    folder = layout_a(tmp_path)
    replace_line(folder / "captions.txt", 4, line)
    with pytest.raises(DataError) as error:
        read_flickr8k(folder)
    one_line(error, str(folder / "captions.txt"), "line 4", "image,caption")


def test_csv_header_required(tmp_path):
    folder = layout_a(tmp_path)
    replace_line(folder / "captions.txt", 1, "file,text\n")
    with pytest.raises(DataError) as error:
        read_flickr8k(folder)
    one_line(error, str(folder / "captions.txt"), "line 1", "header")


@pytest.mark.parametrize("content", ["", "\n  \n"])
def test_empty_split(tmp_path, content):
    folder = layout_a(tmp_path)
    (folder / "Flickr_8k.devImages.txt").write_text(content)
    with pytest.raises(DataError) as error:
        read_flickr8k(folder)
    one_line(error, str(folder / "Flickr_8k.devImages.txt"), "empty")


def test_missing_split_list(tmp_path):
    folder = layout_b(tmp_path)
    (folder / "Flickr8k_text" / "Flickr_8k.testImages.txt").unlink()
    with pytest.raises(DataError) as error:
        read_flickr8k(folder)
    one_line(error, "Flickr_8k.testImages.txt", "no such split list")


def test_no_layout(tmp_path):
    folder = tmp_path / "flickr8k"
    write_images(folder / "Images", NAMES)
    with pytest.raises(DataError) as error:
        read_flickr8k(folder)
    one_line(error, str(folder), "captions.txt", "Flickr8k.token.txt", "Flickr8k_text/Flickr8k.token.txt")
    with pytest.raises(DataError) as error:
        read_flickr8k(tmp_path / "absent")
    one_line(error, str(tmp_path / "absent"), "no such folder")


def test_no_image_folder(tmp_path):
    folder = layout_b(tmp_path)
    (folder / "Flicker8k_Dataset").rename(folder / "photos")
    with pytest.raises(DataError) as error:
        read_flickr8k(folder)
    one_line(error, str(folder), "Flicker8k_Dataset/", "Images/")


def test_load_image(tmp_path):
    pixels = np.random.default_rng(0).integers(0, 256, (4, 6, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(tmp_path / "x.png")
    same = load_image(tmp_path / "x.png", size=4)  # width 6 -> resized
    assert same.shape == (3, 4, 4) and same.dtype == torch.float32
    assert same.min() >= 0.0 and same.max() <= 1.0
    Image.fromarray(pixels[:, :4]).save(tmp_path / "square.png")
    exact = load_image(tmp_path / "square.png", size=4)  # already 4x4: pixels kept exactly
    assert torch.equal(exact, torch.from_numpy(pixels[:, :4]).permute(2, 0, 1).float() / 255)
    Image.fromarray(pixels[..., 0]).save(tmp_path / "grey.png")
    assert load_image(tmp_path / "grey.png", size=8).shape == (3, 8, 8)  # grey becomes RGB


def test_load_image_errors(tmp_path):
    with pytest.raises(DataError) as error:
        load_image(tmp_path / "none.jpg")
    one_line(error, str(tmp_path / "none.jpg"), "no such image file")
    (tmp_path / "text.jpg").write_text("not a picture")
    with pytest.raises(DataError) as error:
        load_image(tmp_path / "text.jpg")
    one_line(error, str(tmp_path / "text.jpg"), "unreadable image")
    Image.fromarray(np.full((64, 64, 3), 99, dtype=np.uint8)).save(tmp_path / "whole.jpg")
    (tmp_path / "cut.jpg").write_bytes((tmp_path / "whole.jpg").read_bytes()[:300])
    with pytest.raises(DataError) as error:
        load_image(tmp_path / "cut.jpg")
    one_line(error, str(tmp_path / "cut.jpg"), "unreadable image")


def test_tokenize_caption():
    assert tokenize_caption("A man's T-shirt , in 2 colours .") == ["a", "mans", "tshirt", "in", "2", "colours"]
    assert tokenize_caption("  . , ") == []


@needs_real
def test_real_flickr8k():
    assert REAL is not None
    splits = read_flickr8k(REAL)
    assert {split: len(items) for split, items in splits.items()} == {"train": 6000, "val": 1000, "test": 1000}
    assert all(len(item.captions) == 5 for items in splits.values() for item in items)
    names = [item.name for items in splits.values() for item in items]
    assert len(set(names)) == 8000  # the splits do not overlap
    by_name = {item.name: item for items in splits.values() for item in items}
    words = {w for text in by_name["1000268201_693b08cb0e.jpg"].captions for w in tokenize_caption(text)}
    assert words & {"girl", "child"} and "stairs" in words
    image = load_image(splits["test"][0].path)
    assert image.shape == (3, 224, 224) and 0.0 <= image.min() < image.max() <= 1.0
