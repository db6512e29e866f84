"""Digit classification on centred, translated and cluttered canvases (Mnih et al. 2014, sec. 4.1).

The recurrent attention model's benchmarks: classify one MNIST digit (10 classes) that sits

    centered    as MNIST gives it, 28x28;
    translated  at a random place of a blank size x size canvas (60x60 in the paper);
    cluttered   as translated, plus `distractors` 8x8 pieces of other digits (60x60 with 4 and
                100x100 with 8 in the paper), see attnlab.data.canvas.

Inputs are images (b, 1, y, x) of floats in [0, 1] (`TaskSpec.image = (1, y, x)`); the answer is
one class (b, 1). Training draws a digit of the training pool and places it anew every step (the
same generator draws both); validation holds out `val_size` training images (a fixed seeded draw,
at most 20% of them) and test uses the test images, each rendered once with a fixed seed and
cached, so every run and model sees the same val and test canvases, and `boxes(split)` says where
each digit went. Distractor pieces are cut from images of the same split.

Source: MNIST read from `{data_dir or ATTNLAB_DATA}/mnist/` (attnlab.data.mnist), or scikit-learn's
8x8 digits upsampled to 28x28 ("small"), which need no download; "auto" takes MNIST when all
four files are present and the small set otherwise (`source_used` says which; a warning names a
data folder given without them). A present but broken MNIST file raises its DataError rather than
falling back silently.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from attnlab.data.canvas import PIECE, clutter, translate
from attnlab.data.mnist import NUM_CLASSES, SIDE, load_mnist, load_small_digits, mnist_available, mnist_dir
from attnlab.errors import ConfigError, DataError
from attnlab.spec import TaskSpec
from attnlab.tasks.base import TASKS, Batch, Task

SETTINGS = ("centered", "translated", "cluttered")
SOURCES = ("mnist", "small", "auto")
VAL_CAP = 0.2  # at most this fraction of the training images is held out for validation
SPLIT_SEED = 2**31 - 4  # the fixed draw of the held-out validation images
CANVAS_SEEDS = {"val": 2**31 - 2, "test": 2**31 - 3}  # the fixed placements of the eval canvases


@dataclass(frozen=True)
class DigitsConfig:
    setting: str = "centered"  # "centered" (28x28 as is), "translated", "cluttered"
    size: int = 60  # canvas side for translated/cluttered (ignored for centered: 28)
    distractors: int = 4  # cluttered: number of 8x8 distractor pieces
    source: str = "auto"  # "mnist", "small" (scikit-learn's digits), "auto" (mnist when present, else small)
    data_dir: str = ""  # folder holding mnist/; empty = env ATTNLAB_DATA
    val_size: int = 5000  # training images held out for validation (capped at 20% of them)

    def __post_init__(self) -> None:
        if self.setting not in SETTINGS:
            raise ValueError(f"setting must be one of {', '.join(SETTINGS)}, got {self.setting!r}")
        if self.source not in SOURCES:
            raise ValueError(f"source must be one of {', '.join(SOURCES)}, got {self.source!r}")
        if self.setting != "centered" and self.size < SIDE:
            raise ValueError(f"size must be >= {SIDE} (the digit side) for {self.setting}, got {self.size}")
        if self.distractors < 0:
            raise ValueError(f"distractors must be >= 0, got {self.distractors}")
        if self.val_size < 1:
            raise ValueError(f"val_size must be >= 1, got {self.val_size}")

    @property
    def side(self) -> int:
        """The canvas side the models see: 28 when centered, else size."""
        return SIDE if self.setting == "centered" else self.size


@dataclass
class _Split:
    """One split's images and where they come from; val and test also hold their fixed canvases."""

    images: Tensor  # (r, 28, 28) uint8 digits
    labels: Tensor  # (r,) long classes
    rows: Tensor  # (r,) long row of each image in its source file (train file for train and val)
    canvas: Tensor | None = None  # (r, y, x) uint8, the rendered canvases (val and test only)
    boxes: Tensor | None = None  # (r, 4) long (top, left, height, width) of each digit


@TASKS.register("digits")
class Digits(Task):
    """MNIST digits, centred, translated or cluttered: classify the one digit on the canvas."""

    Config = DigitsConfig
    config: DigitsConfig

    def __init__(self, config: DigitsConfig | None = None) -> None:
        super().__init__(config)
        self._source: str | None = None  # "mnist" or "small", resolved on first use
        self._data: dict[str, _Split] | None = None  # "train", "val", "test", built on first use

    # -- data ---------------------------------------------------------------------------------

    @property
    def source_used(self) -> str:
        """ "mnist" or "small": the source the task reads (resolves "auto")."""
        if self._source is None:
            source, folder = self.config.source, self.config.data_dir or None
            if source == "auto":
                source = "mnist" if mnist_available(folder) else "small"
                if source == "small" and (folder or os.environ.get("ATTNLAB_DATA")):
                    # a named folder without MNIST is more often a wrong path than a wish for the small set
                    warnings.warn(
                        f"digits: no MNIST in {self._folder()} (source 'auto'); reading scikit-learn's small digits",
                        stacklevel=2,
                    )
            self._source = source
        return self._source

    def _folder(self) -> str:
        try:
            return str(mnist_dir(self.config.data_dir or None))
        except ValueError:
            return "<no data folder: set task.data_dir or ATTNLAB_DATA>"

    def _read(self) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """split -> (images (k, 28, 28) uint8, labels (k,)) from the resolved source."""
        if self.source_used == "small":
            return {split: load_small_digits(split) for split in ("train", "test")}
        if not mnist_available(self.config.data_dir or None):
            raise ConfigError(f"digits: source 'mnist' needs the four MNIST files in {self._folder()}")
        try:
            return {split: load_mnist(split, self.config.data_dir or None) for split in ("train", "test")}
        except OSError as error:
            raise DataError(f"{self._folder()}: MNIST not readable ({error})") from None

    def data(self) -> dict[str, _Split]:
        """The "train", "val" and "test" splits; val and test with their fixed canvases (cached)."""
        if self._data is not None:
            return self._data
        splits = self.source_splits()
        for name, seed in CANVAS_SEEDS.items():
            split = splits[name]
            generator = torch.Generator().manual_seed(seed)
            split.canvas, split.boxes = self._place(split.images, split.images, generator, as_uint8=True)
        self._data = splits
        return splits

    def source_splits(self) -> dict[str, _Split]:
        """The "train", "val" and "test" digits of the resolved source, without canvases (fresh objects).

        val holds out min(val_size, 20%) of the training images by a fixed seeded draw; test is the
        test file. Other tasks that place these digits (attnlab.tasks.digit_pairs) read them here.
        """
        raw = self._read()
        train_images = torch.from_numpy(raw["train"][0].copy())  # (k, 28, 28)
        train_labels = torch.from_numpy(raw["train"][1].copy())  # (k,)
        k = len(train_labels)
        held = min(self.config.val_size, int(VAL_CAP * k))
        if held < 1 or held >= k:
            raise DataError(f"{self._folder()}: {k} training images, too few to hold out a validation set")
        order = torch.randperm(k, generator=torch.Generator().manual_seed(SPLIT_SEED))  # (k,)
        val_rows, train_rows = order[:held].sort().values, order[held:].sort().values  # (v,), (k - v,)
        test_rows = torch.arange(len(raw["test"][1]))  # (r,)
        splits = {
            "train": _Split(train_images[train_rows], train_labels[train_rows], train_rows),
            "val": _Split(train_images[val_rows], train_labels[val_rows], val_rows),
            "test": _Split(torch.from_numpy(raw["test"][0].copy()), torch.from_numpy(raw["test"][1].copy()), test_rows),
        }
        return splits

    def _place(
        self, digits: Tensor, pool: Tensor, generator: torch.Generator, as_uint8: bool = False
    ) -> tuple[Tensor, Tensor]:
        """digits (k, 28, 28) uint8 -> canvases (k, y, x) float in [0, 1] (uint8 0..255) and boxes (k, 4)."""
        cfg = self.config
        if cfg.setting == "centered":
            boxes = torch.tensor([0, 0, SIDE, SIDE]).expand(len(digits), 4).clone()  # (k, 4)
            return (digits.clone() if as_uint8 else digits.float() / 255.0), boxes
        if cfg.setting == "translated":
            return translate(digits, cfg.size, generator, as_uint8=as_uint8)
        return clutter(digits, pool, cfg.size, cfg.distractors, PIECE, generator=generator, as_uint8=as_uint8)

    def source_rows(self, split: str) -> Tensor:
        """(r,) the row of each image of split in its source file (train's file for train and val)."""
        return self._split(split).rows.clone()

    def boxes(self, split: str) -> Tensor:
        """(r, 4) long (top, left, height, width) of the digit on each fixed val or test canvas."""
        if split not in CANVAS_SEEDS:
            raise ValueError(f"split must be 'val' or 'test', got {split!r}")
        boxes = self._split(split).boxes
        assert boxes is not None  # val and test keep the boxes of their fixed canvases
        return boxes.clone()

    def _split(self, split: str) -> _Split:
        data = self.data()
        if split not in data:
            raise ValueError(f"split must be one of {', '.join(data)}, got {split!r}")
        return data[split]

    # -- the Task interface -------------------------------------------------------------------

    @property
    def spec(self) -> TaskSpec:
        side = self.config.side
        return TaskSpec(seq_len=1, answer_len=1, input_features=0, num_outputs=NUM_CLASSES, image=(1, side, side))

    def sample(self, batch_size: int, generator: torch.Generator) -> Batch:
        """batch_size training digits drawn uniformly (with replacement), each placed anew, with where each
        digit went: boxes (b, 4) long (top, left, height, width)."""
        train = self.data()["train"]
        index = torch.randint(0, len(train.labels), (batch_size,), generator=generator)  # (b,)
        canvas, boxes = self._place(train.images[index], train.images, generator)  # (b, y, x), (b, 4)
        return Batch(canvas.unsqueeze(1), train.labels[index].unsqueeze(1), boxes=boxes)  # (b, 1, y, x), (b, 1)

    def eval_set(self, size: int, split: str = "val") -> Batch:
        """The first size canvases (at most the split's size) of the fixed val or test split, with their boxes."""
        if split not in CANVAS_SEEDS:
            raise ValueError(f"split must be 'val' or 'test', got {split!r}")
        stored = self.data()[split]
        assert stored.canvas is not None and stored.boxes is not None  # val and test keep their fixed canvases
        inputs = stored.canvas[:size].float().div(255.0).unsqueeze(1)  # (r, 1, y, x)
        return Batch(inputs, stored.labels[:size].unsqueeze(1).clone(), boxes=stored.boxes[:size].clone())  # (r, 1)

    def metrics(self, logits: Tensor, batch: Batch) -> dict[str, float]:
        """accuracy (and sequence_accuracy, the same for one answer) plus error = 1 - accuracy."""
        result = super().metrics(logits, batch)
        result["error"] = 1.0 - result["accuracy"]
        return result

    def token_names(self) -> list[str]:
        return []  # inputs are images, not tokens

    def render(self, batch: Batch, index: int = 0, logits: Tensor | None = None) -> str:
        """The image's size, the digit's label and, given logits (b, 1, 10), the predicted class."""
        y, x = batch.inputs.shape[-2:]
        text = f"input: {y}x{x} image\nanswer: {int(batch.targets[index, 0])}"
        if logits is not None:
            text += f"\npredicted: {int(logits[index, 0].argmax())}"
        return text

    def describe(self) -> str:
        """One line, e.g. "MNIST 60x60 cluttered, 4 distractors of 8x8"."""
        cfg = self.config
        name = "MNIST" if self.source_used == "mnist" else "scikit-learn digits (8x8 upsampled)"
        text = f"{name} {cfg.side}x{cfg.side} {cfg.setting}"
        if cfg.setting == "cluttered":
            text += f", {cfg.distractors} distractors of {PIECE}x{PIECE}"
        return text
