"""Two digits on a cluttered canvas: name the unordered pair, or their sum.

Ba, Mnih, Kavukcuoglu 2015, "Multiple Object Recognition with Visual Attention" (arXiv:1412.7755),
sec. 4.1: two MNIST digits placed on a 100x100 canvas with clutter; the target is either

    pair   the unordered pair {a, b}: 55 classes (DRAM 5% error, DRAM without context 7%, RAM 9%);
    sum    a + b: 19 classes, 0..18 (a conv net 3.2%, DRAM 2.5%).

Canvas (attnlab.data.canvas.clutter_apart): the two 28x28 digits go to random places where their
boxes do not overlap, drawn uniformly over such placements by rejection (both corners are drawn
again on a canvas where the boxes overlap, until none does); then `distractors` 8x8 pieces of other
digits of the same split are max-combined anywhere (as the cluttered setting of `digits`), so a
piece may cross a digit but never erases it. `size` must be >= 56 (two digits side by side).

Answer layout, `answer`:

    "class"   one answer (b, 1): the pair's class id (55 classes) or the sum (19). Every image family
              trains on it (image_cnn, image_mlp, soft_attention, ram), and so does DRAM with one
              label after all its glimpses.
    "digits"  pair only: two answers (b, 2), the two digits sorted ascending, 10 classes each. DRAM
              emits them one after the other (one label per `glimpses_per_label` glimpses), as the
              paper's model names objects in sequence; sorting makes the answer unordered. Both right
              is the 55-way class right, so `sequence_accuracy` (and `error`) is the pair's accuracy
              in both layouts and the two layouts compare directly.

The pair class map: {a, b} with a <= b goes to `pair_class(a, b) = 10 a - a (a - 1) / 2 + (b - a)`,
the pairs listed (0,0), (0,1), .., (0,9), (1,1), .., (1,9), .., (9,9) in order: a bijection onto
0..54 (`PAIRS[c]` is class c's pair).

Data as `digits` (and read by it: `Digits.source_splits`): MNIST or scikit-learn's small digits,
val held out of the training images by a fixed draw, test from the test images. Training pairs two
uniformly drawn training digits and places them anew every step. val and test pair each image i of
the split with a partner drawn with a fixed seed (another image of the same split) and render the
canvases once, so every run and model sees the same eval canvases; `boxes(split)` (r, 2, 4) says
where both digits went (image i first, its partner second), `digits_of(split)` (r, 2) their labels
in the same order.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from attnlab.data.canvas import PIECE, clutter_apart
from attnlab.data.mnist import NUM_CLASSES, SIDE
from attnlab.spec import TaskSpec
from attnlab.tasks.base import TASKS, Batch, Task
from attnlab.tasks.digits import CANVAS_SEEDS, SOURCES, Digits, DigitsConfig

TARGETS = ("pair", "sum")
ANSWERS = ("class", "digits")
PAIRS: tuple[tuple[int, int], ...] = tuple((a, b) for a in range(NUM_CLASSES) for b in range(a, NUM_CLASSES))
NUM_PAIRS = len(PAIRS)  # 55
NUM_SUMS = 2 * NUM_CLASSES - 1  # 19: 0..18
PARTNER_SEEDS = {"val": 2**31 - 5, "test": 2**31 - 6}  # the fixed partners of the eval canvases


def pair_class(first: Tensor, second: Tensor) -> Tensor:
    """The unordered pair's class id: digits (...) long, in either order -> (...) long in 0..54."""
    a, b = torch.minimum(first, second), torch.maximum(first, second)  # (...) each, a <= b
    return 10 * a - a * (a - 1) // 2 + (b - a)  # (...)


@dataclass(frozen=True)
class DigitPairsConfig:
    target: str = "pair"  # "pair" (the unordered pair, 55 classes) or "sum" (19 classes)
    answer: str = "class"  # "class" (one answer) or "digits" (pair only: the two digits sorted, 10 classes each)
    size: int = 100  # canvas side (>= 56)
    distractors: int = 8  # 8x8 distractor pieces per canvas
    source: str = "auto"  # "mnist", "small" (scikit-learn's digits), "auto" (mnist when present, else small)
    data_dir: str = ""  # folder holding mnist/; empty = env ATTNLAB_DATA
    val_size: int = 5000  # training images held out for validation (capped at 20% of them)

    def __post_init__(self) -> None:
        if self.target not in TARGETS:
            raise ValueError(f"target must be one of {', '.join(TARGETS)}, got {self.target!r}")
        if self.answer not in ANSWERS:
            raise ValueError(f"answer must be one of {', '.join(ANSWERS)}, got {self.answer!r}")
        if self.answer == "digits" and self.target != "pair":
            raise ValueError(f"answer 'digits' needs target 'pair' (a sum is one class), got target {self.target!r}")
        if self.size < 2 * SIDE:
            raise ValueError(f"size must be >= {2 * SIDE} (two digits side by side), got {self.size}")
        if self.distractors < 0:
            raise ValueError(f"distractors must be >= 0, got {self.distractors}")
        if self.source not in SOURCES:
            raise ValueError(f"source must be one of {', '.join(SOURCES)}, got {self.source!r}")
        if self.val_size < 1:
            raise ValueError(f"val_size must be >= 1, got {self.val_size}")


@dataclass
class _Pairs:
    """One eval split's fixed canvases."""

    canvas: Tensor  # (r, y, x) uint8
    boxes: Tensor  # (r, 2, 4) long (top, left, height, width) of image i and of its partner
    digits: Tensor  # (r, 2) long labels of image i and of its partner


def smaller_first(boxes: Tensor, digits: Tensor) -> Tensor:
    """boxes (b, 2, 4) of digits (b, 2) reordered so that the smaller digit's comes first (ties: as given)."""
    order = digits.argsort(dim=1, stable=True)  # (b, 2)
    return boxes.gather(1, order[:, :, None].expand(-1, -1, 4))  # (b, 2, 4)


@TASKS.register("digit_pairs")
class DigitPairs(Task):
    """Two digits in clutter: name the unordered pair (55 classes) or the sum (19)."""

    Config = DigitPairsConfig
    config: DigitPairsConfig
    metric = "sequence_accuracy"  # the pair (or sum) right, in either answer layout

    def __init__(self, config: DigitPairsConfig | None = None) -> None:
        super().__init__(config)
        cfg = self.config
        self.digits = Digits(DigitsConfig(source=cfg.source, data_dir=cfg.data_dir, val_size=cfg.val_size))
        self._eval: dict[str, _Pairs] = {}

    @property
    def source_used(self) -> str:
        """ "mnist" or "small" (resolves "auto")."""
        return self.digits.source_used

    def _render(
        self, images: Tensor, pool: Tensor, generator: torch.Generator, as_uint8: bool
    ) -> tuple[Tensor, Tensor]:
        """images (k, 2, 28, 28) -> canvases (k, y, x) and boxes (k, 2, 4), pieces cut from pool (m, 28, 28)."""
        cfg = self.config
        return clutter_apart(images, pool, cfg.size, cfg.distractors, PIECE, generator=generator, as_uint8=as_uint8)

    def _fixed(self, split: str) -> _Pairs:
        """The split's fixed canvases: image i with a partner drawn by a fixed seed (cached)."""
        if split not in CANVAS_SEEDS:
            raise ValueError(f"split must be 'val' or 'test', got {split!r}")
        if split not in self._eval:
            stored = self.digits.data()[split]  # the same held-out images as `digits`
            r = len(stored.labels)
            shift = torch.randint(1, max(r, 2), (r,), generator=torch.Generator().manual_seed(PARTNER_SEEDS[split]))
            index = torch.stack([torch.arange(r), (torch.arange(r) + shift) % r], dim=1)  # (r, 2), partner != i
            generator = torch.Generator().manual_seed(CANVAS_SEEDS[split])
            canvas, boxes = self._render(stored.images[index], stored.images, generator, True)
            self._eval[split] = _Pairs(canvas, boxes, stored.labels[index])
        return self._eval[split]

    def boxes(self, split: str) -> Tensor:
        """(r, 2, 4) long (top, left, height, width) of both digits of each fixed val or test canvas."""
        return self._fixed(split).boxes.clone()

    def digits_of(self, split: str) -> Tensor:
        """(r, 2) long labels of the two digits of each fixed val or test canvas, in `boxes`' order."""
        return self._fixed(split).digits.clone()

    def targets(self, digits: Tensor) -> Tensor:
        """The answers for digit labels (b, 2): (b, 1) pair class or sum, or (b, 2) the sorted digits."""
        if self.config.target == "sum":
            return digits.sum(1, keepdim=True)  # (b, 1)
        if self.config.answer == "digits":
            return digits.sort(dim=1).values  # (b, 2)
        return pair_class(digits[:, 0], digits[:, 1])[:, None]  # (b, 1)

    # -- the Task interface -------------------------------------------------------------------

    @property
    def spec(self) -> TaskSpec:
        cfg = self.config
        answers, classes = 1, NUM_SUMS
        if cfg.target == "pair":
            answers, classes = (2, NUM_CLASSES) if cfg.answer == "digits" else (1, NUM_PAIRS)
        return TaskSpec(
            seq_len=1, answer_len=answers, input_features=0, num_outputs=classes, image=(1, cfg.size, cfg.size)
        )

    def sample(self, batch_size: int, generator: torch.Generator) -> Batch:
        """batch_size canvases of two training digits drawn uniformly (with replacement), placed anew, with
        where its digits went: boxes (b, 2, 4) long (top, left, height, width), the smaller digit's first (the
        order DRAM names them in; ties in drawn order)."""
        train = self.digits.data()["train"]
        index = torch.randint(0, len(train.labels), (batch_size, 2), generator=generator)  # (b, 2)
        digits = train.labels[index]  # (b, 2)
        canvas, boxes = self._render(train.images[index], train.images, generator, False)  # (b, y, x), (b, 2, 4)
        boxes = smaller_first(boxes, digits)  # (b, 2, 4)
        return Batch(canvas.unsqueeze(1), self.targets(digits), boxes=boxes)  # (b, 1, y, x), (b, n)

    def eval_set(self, size: int, split: str = "val") -> Batch:
        """The first size canvases (at most the split's size) of the fixed val or test split, with their
        boxes as `sample`'s: the smaller digit's first."""
        fixed = self._fixed(split)
        inputs = fixed.canvas[:size].float().div(255.0).unsqueeze(1)  # (r, 1, y, x)
        digits = fixed.digits[:size]  # (r, 2)
        return Batch(inputs, self.targets(digits), boxes=smaller_first(fixed.boxes[:size], digits))  # (r, n)

    def metrics(self, logits: Tensor, batch: Batch) -> dict[str, float]:
        """accuracy per answer, sequence_accuracy (the pair or sum right) and error = 1 - sequence_accuracy."""
        result = super().metrics(logits, batch)
        result["error"] = 1.0 - result["sequence_accuracy"]
        return result

    def token_names(self) -> list[str]:
        return []  # inputs are images, not tokens

    def answer_text(self, answer: Tensor) -> str:
        """One example's answer (n,) as text: "3+7" for a pair (a class or two digits), "10" for a sum."""
        if self.config.target == "sum":
            return str(int(answer[0]))
        a, b = answer.tolist() if self.config.answer == "digits" else PAIRS[int(answer[0])]
        return f"{a}+{b}"

    def render(self, batch: Batch, index: int = 0, logits: Tensor | None = None) -> str:
        """The image's size, the answer and, given logits (b, n, o), the prediction."""
        y, x = batch.inputs.shape[-2:]
        text = f"input: {y}x{x} image\nanswer: {self.answer_text(batch.targets[index])}"
        if logits is not None:
            text += f"\npredicted: {self.answer_text(logits[index].argmax(-1))}"
        return text

    def describe(self) -> str:
        """One line, e.g. "two MNIST digits on 100x100, 8 distractors of 8x8: the unordered pair (55 classes)"."""
        cfg = self.config
        name = "MNIST digits" if self.source_used == "mnist" else "scikit-learn digits (8x8 upsampled)"
        what = "the unordered pair (55 classes)" if cfg.target == "pair" else "their sum (19 classes)"
        if cfg.answer == "digits":
            what = "the unordered pair as two sorted digits"
        return f"two {name} on {cfg.size}x{cfg.size}, {cfg.distractors} distractors of {PIECE}x{PIECE}: {what}"
