"""Captioning: write a sentence about an image, from its annotation vectors (Xu et al. 2015).

Every example is an image's L annotation vectors a_i (inputs (b, L, D) floats, one per location of
a grid, row-major) and one of its captions (targets (b, n): word ids, EOS, then PAD). Sources:

    "scenes"    generated digit scenes (attnlab.data.scenes), no data needed: each grid cell's
                pixels plus a one-hot of the cell's position are its annotation vector
                (D = cell^2 + L), so where each digit word should look is known exactly.
    "flickr8k"  the photographs of Flickr8k (attnlab.data.flickr8k) from
                `{data_dir or ATTNLAB_DATA}/flickr8k/`, annotation vectors from the pretrained
                EfficientNet-Lite0 (attnlab.pretrained.image_features, cached on disk):
                layer "stride32", 7 x 7 x 1280 (the encoder's last map; the default: it
                scores higher, docs/captioning.md), or "stride16", 14 x 14 x 112 (the paper's
                196 locations). With `finetune` the inputs are the photographs (b, 3, 224, 224)
                for a family that encodes them, and a new run's encoder starts from the
                ImageNet weights (`prepare_model`).

Training batches are runs of neighbours in the list of every (image, caption) pair of the training
images sorted by caption length (ties in a fixed random order), from a uniformly drawn start: each
batch is padded to little more than its captions' words, which halves a recurrent decoder's steps
on Flickr8k against uniformly drawn pairs.
`eval_set` gives the first `size` images of a split, each with its first caption as the target
and `Batch.ids` naming the image, so that `metrics` scores the model's caption against all of the
image's references: corpus BLEU-1..4 and CIDEr-D (attnlab.tasks.caption_metrics, lowercased and
tokenised as published captioning results are). Captions are lowercased, punctuation dropped;
training captions longer than max_len words are dropped, words seen fewer than min_count times
in the training captions read as <unk>.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from attnlab.data.flickr8k import SIZE as IMAGE_SIDE
from attnlab.data.flickr8k import flickr8k_folder, load_image, read_flickr8k, tokenize_caption
from attnlab.data.scenes import DIGIT_SIDE as SCENE_CELL
from attnlab.data.scenes import WORDS, Scenes, make_scenes, patch_features
from attnlab.data.subword import EOS, SPECIALS, WordVocab
from attnlab.errors import ConfigError, DataError
from attnlab.spec import PAD, TaskSpec
from attnlab.tasks.base import TASKS, Batch, Task
from attnlab.tasks.caption_metrics import bleu, cider

SOURCES = ("scenes", "flickr8k")
LAYERS = {"stride16": (14, 14, 112), "stride32": (7, 7, 1280)}  # the encoder's maps at 224 x 224: rows, cols, D
SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class CaptionConfig:
    source: str = "scenes"  # "scenes" (generated, no data) or "flickr8k"
    data_dir: str = ""  # flickr8k: the folder holding flickr8k/; empty = env ATTNLAB_DATA
    layer: str = "stride32"  # flickr8k: the encoder map, "stride32" (7 x 7 x 1280) or "stride16" (14 x 14 x 112)
    cache_dir: str = ""  # flickr8k: where features are cached; empty = attnlab.pretrained.image_features' default
    min_count: int = 5  # flickr8k: training-caption words seen fewer times read as <unk>
    max_len: int = 20  # words of a caption at most (longer training captions are dropped, others cut)
    scenes: int = 4000  # scenes: training scenes (val and test: a quarter as many each)
    max_digits: int = 3  # scenes: 2..max_digits digits in a scene
    seed: int = 0  # scenes: which scenes
    finetune: bool = False  # flickr8k: inputs are the photographs, for a family that encodes them (show_attend_tell
    # with model.encoder=efficientnet_lite0), whose encoder starts from the ImageNet weights and trains with it

    def __post_init__(self) -> None:
        if self.source not in SOURCES:
            raise ValueError(f"CaptionConfig.source: must be one of {', '.join(SOURCES)}; got {self.source!r}")
        if self.layer not in LAYERS:
            raise ValueError(f"CaptionConfig.layer: must be one of {', '.join(LAYERS)}; got {self.layer!r}")
        if self.finetune and self.source != "flickr8k":
            raise ValueError(
                f"CaptionConfig.finetune: the encoder is fine-tuned on photographs, source flickr8k; got {self.source!r}"
            )
        for name, low in (("min_count", 1), ("max_len", 1), ("scenes", 4), ("max_digits", 2)):
            if getattr(self, name) < low:
                raise ValueError(f"CaptionConfig.{name}: must be >= {low}; got {getattr(self, name)}")


@dataclass
class _Split:
    """The images of one split: global image numbers, and each image's captions as word lists."""

    images: list[int]  # indices into the task's features / references
    captions: list[list[list[str]]]  # per image, its captions' words


@TASKS.register("caption")
class CaptionTask(Task):
    """Caption an image from its annotation vectors: generated digit scenes, or Flickr8k's photographs."""

    Config = CaptionConfig
    config: CaptionConfig
    metric = "bleu4"

    def __init__(self, config: CaptionConfig | None = None):
        super().__init__(config)
        self._loaded = False
        self._vocab: WordVocab | None = None
        self.features = torch.zeros(0)  # (images, L, D) every split's annotation vectors, in split order
        self.splits: dict[str, _Split] = {}
        self.scenes: dict[str, Scenes] = {}  # source "scenes": the generated scenes of each split
        self.paths: list[Path] = []  # source "flickr8k": each image's file
        self._pairs: Tensor = torch.zeros(0, 2, dtype=torch.long)  # (p, 2) training (image, caption) pairs

    # ---- data ---------------------------------------------------------------------------------

    def _load(self) -> None:
        if self._loaded:
            return
        if self.config.source == "scenes":
            self._load_scenes()
        else:
            self._load_flickr8k()
        train = self.splits["train"]
        if self._vocab is None:
            words = (" ".join(c) for caps in train.captions for c in caps)
            self._vocab = WordVocab.build(words, min_count=self.config.min_count)
        pairs = [(len(c), image, k) for image, caps in zip(train.images, train.captions) for k, c in enumerate(caps)
                 if 0 < len(c) <= self.config.max_len]  # fmt: skip
        if not pairs:
            raise DataError(f"caption: no training caption of 1..{self.config.max_len} words")
        # by length, ties in a fixed random order: a batch of neighbours is padded to little more than its words
        shuffled = torch.randperm(len(pairs), generator=torch.Generator().manual_seed(0)).tolist()
        order = sorted(range(len(pairs)), key=lambda i: (pairs[i][0], shuffled[i]))
        self._pairs = torch.tensor([pairs[i][1:] for i in order])  # (p, 2) (image, caption number)
        self._loaded = True

    def _load_scenes(self) -> None:
        cfg = self.config
        sizes = {"train": cfg.scenes, "val": cfg.scenes // 4, "test": cfg.scenes // 4}
        digits = tuple(range(2, cfg.max_digits + 1))
        grid = self.grid
        features, start = [], 0
        for split, size in sizes.items():
            # val scenes use the training digit images with another seed; test scenes, the held-out images
            scenes = make_scenes(size, seed=cfg.seed + (1 if split == "val" else 0),
                                 split="test" if split == "test" else "train", digits=digits, grid=grid)  # fmt: skip
            self.scenes[split] = scenes
            patches = patch_features(scenes.images, scenes.cell)  # (n, L, cell^2)
            where = torch.eye(patches.shape[1]).expand(size, -1, -1)  # (n, L, L) one-hot of each cell
            features.append(torch.cat([patches, where], -1))  # (n, L, cell^2 + L)
            self.splits[split] = _Split(list(range(start, start + size)), [[c] for c in scenes.captions])
            start += size
        self.features = torch.cat(features)  # (images, L, D)
        self._vocab = WordVocab([*SPECIALS, *WORDS])

    def _load_flickr8k(self) -> None:
        """The captions and splits now; the annotation vectors on first use (`_features`)."""
        folder = flickr8k_folder(self.config.data_dir or None)
        if folder is None:
            where = self.config.data_dir or "env ATTNLAB_DATA"
            raise DataError(f"caption: no flickr8k/ folder under {where} (see docs/captioning.md)")
        splits = read_flickr8k(folder)
        self.paths = [image.path for split in SPLITS for image in splits[split]]
        start = 0
        for split in SPLITS:
            caps = [[tokenize_caption(c) for c in image.captions] for image in splits[split]]
            self.splits[split] = _Split(list(range(start, start + len(caps))), caps)
            start += len(caps)

    def _features(self) -> Tensor:
        """(images, L, D) every split's annotation vectors (flickr8k: from the feature cache, computed once)."""
        self._load()
        if self.features.numel() == 0 and self.config.source == "flickr8k":
            from attnlab.pretrained.image_features import image_features  # imported here: loads the encoder's code

            cache = Path(self.config.cache_dir) if self.config.cache_dir else None
            self.features = image_features(self.paths, layer=self.config.layer, cache_dir=cache)  # (images, L, D)
        return self.features

    @property
    def vocab(self) -> WordVocab:
        """The caption words: from the run's assets when loaded from a run folder, else from the training captions."""
        if self._vocab is None:
            self._load()
        assert self._vocab is not None  # set by _load
        return self._vocab

    @property
    def grid(self) -> tuple[int, int]:
        """(rows, cols) of the L locations, row-major."""
        if self.config.source == "scenes":
            return (2, max(6, 2 * self.config.max_digits))
        rows, cols, _ = LAYERS[self.config.layer]
        return rows, cols

    @property
    def width(self) -> int:
        """D, the width of an annotation vector."""
        rows, cols = self.grid
        return SCENE_CELL**2 + rows * cols if self.config.source == "scenes" else LAYERS[self.config.layer][2]

    def save_assets(self, folder: str | Path) -> None:
        self.vocab.save(Path(folder) / "caption_vocab.json")

    def load_assets(self, folder: str | Path) -> None:
        path = Path(folder) / "caption_vocab.json"
        if path.is_file():
            self._vocab = WordVocab.load(path)

    @property
    def spec(self) -> TaskSpec:
        """Known without reading the data when the vocabulary came from a run folder's assets."""
        rows, cols = self.grid
        if self.config.finetune:  # the photographs themselves, preprocessed for the encoder
            return TaskSpec(seq_len=rows * cols, answer_len=self.config.max_len + 1, image=(3, IMAGE_SIDE, IMAGE_SIDE),
                            num_outputs=len(self.vocab), eos_id=EOS)  # fmt: skip
        return TaskSpec(seq_len=rows * cols, answer_len=self.config.max_len + 1, input_features=self.width,
                        num_outputs=len(self.vocab), eos_id=EOS)  # fmt: skip

    def prepare_model(self, model: Any) -> None:
        """finetune: the model's encoder starts from EfficientNet-Lite0's ImageNet weights (loaded exactly)."""
        if not self.config.finetune:
            return
        encoder = getattr(model, "encoder", None)
        if encoder is None:
            raise ConfigError("caption: task.finetune needs a family that encodes the photographs "
                              "(show_attend_tell with --model.encoder=efficientnet_lite0)")  # fmt: skip
        from attnlab.pretrained.efficientnet import default_weights_path, load_weights, read_weights

        load_weights(encoder, read_weights(default_weights_path()), source="efficientnet-lite0 ImageNet weights")

    def _targets(self, captions: list[list[str]]) -> Tensor:
        """Word lists -> (b, n) ids, each cut to max_len words and ended with EOS, then PAD."""
        rows = [[*self.vocab.encode(" ".join(words[: self.config.max_len])), EOS] for words in captions]
        out = torch.full((len(rows), max(len(r) for r in rows)), PAD, dtype=torch.long)  # (b, n)
        for i, row in enumerate(rows):
            out[i, : len(row)] = torch.tensor(row)
        return out

    def _rows(self, images: Tensor, captions: list[list[str]], full_length: bool = False) -> Batch:
        targets = self._targets(captions)  # (b, n')
        if full_length:
            targets = F.pad(targets, (0, self.spec.answer_len - targets.shape[1]), value=PAD)  # (b, n)
        if self.config.finetune:
            return Batch(self.encode_images([self.paths[int(i)] for i in images]), targets, images)  # (b, 3, y, x)
        return Batch(self._features()[images].float(), targets, images)  # (b, L, D)

    def sample(self, batch_size: int, generator: torch.Generator) -> Batch:
        self._load()
        start = int(torch.randint(len(self._pairs), (1,), generator=generator))
        pick = self._pairs[(start + torch.arange(batch_size)) % len(self._pairs)]  # (b, 2) neighbours in length order
        captions = [self._captions_of(int(image))[int(k)] for image, k in pick]
        return self._rows(pick[:, 0], captions)

    def eval_set(self, size: int, split: str = "val") -> Batch:
        """The first `size` images of split, each with its first caption; ids name the images."""
        if split not in ("val", "test"):
            raise ValueError(f"split must be 'val' or 'test', got {split!r}")
        self._load()
        data = self.splits[split]
        count = min(size, len(data.images))
        return self._rows(torch.tensor(data.images[:count]), [caps[0] for caps in data.captions[:count]], True)

    def _locate(self, image: int) -> tuple[str, int]:
        """The split holding image number `image` (a Batch.ids entry) and its place in that split."""
        self._load()
        for split, data in self.splits.items():
            if data.images and data.images[0] <= image < data.images[0] + len(data.images):
                return split, image - data.images[0]
        raise IndexError(f"caption: no image {image}")

    def _captions_of(self, image: int) -> list[list[str]]:
        split, place = self._locate(image)
        return self.splits[split].captions[place]

    def image(self, index: int) -> Tensor:
        """The picture of image `index` (a Batch.ids entry): (c, H, W) in [0, 1]."""
        split, place = self._locate(index)
        if self.config.source == "scenes":
            return self.scenes[split].images[place]  # (1, H, W)
        return load_image(self.paths[index])  # (3, 224, 224)

    def encode_images(self, paths: list[Path]) -> Tensor:
        """The inputs of any image files, made as this task makes its own: annotation vectors (b, L, D),
        or with finetune the preprocessed photographs (b, 3, 224, 224).

        flickr8k: the encoder's map (cached like the dataset's). scenes: the picture in grey,
        resized to the canvas, cut into its cells, each with its one-hot position.
        """
        if self.config.finetune:
            from attnlab.pretrained.efficientnet import preprocess

            return preprocess(torch.stack([load_image(p) for p in paths]))  # (b, 3, 224, 224)
        if self.config.source == "flickr8k":
            from attnlab.pretrained.image_features import image_features

            cache = Path(self.config.cache_dir) if self.config.cache_dir else None
            return image_features(paths, layer=self.config.layer, cache_dir=cache, progress=False).float()
        rows, cols = self.grid
        size = (rows * SCENE_CELL, cols * SCENE_CELL)
        grey = torch.stack([load_image(p).mean(0, keepdim=True) for p in paths])  # (b, 1, 224, 224)
        canvas = F.interpolate(grey, size=size, mode="bilinear", align_corners=False)  # (b, 1, H, W)
        patches = patch_features(canvas, SCENE_CELL)  # (b, L, cell^2)
        return torch.cat([patches, torch.eye(rows * cols).expand(len(paths), -1, -1)], -1)  # (b, L, D)

    def image_file(self, path: Path) -> Tensor:
        """The picture of an image file as this task shows its own: (3, 224, 224), or the grey canvas of a scene."""
        if self.config.source == "flickr8k":
            return load_image(path)  # (3, 224, 224)
        rows, cols = self.grid
        grey = load_image(path).mean(0, keepdim=True)[None]  # (1, 1, 224, 224)
        return F.interpolate(grey, size=(rows * SCENE_CELL, cols * SCENE_CELL), mode="bilinear", align_corners=False)[0]

    def named_cells(self, index: int) -> list[int]:
        """scenes: the cell each word of image `index`'s caption names (-1 for words naming none)."""
        if self.config.source != "scenes":
            raise ValueError("caption: only generated scenes know where each word should look")
        split, place = self._locate(index)
        return self.scenes[split].named_cells(place)

    # ---- scoring ------------------------------------------------------------------------------

    def loss(self, logits: Tensor, batch: Batch) -> Tensor:
        """logits (b, n, o) -> mean cross-entropy over caption words and EOS (PAD ignored)."""
        n = batch.targets.shape[1]
        return F.cross_entropy(logits[:, :n].flatten(0, 1), batch.targets.flatten(), ignore_index=PAD)

    def words(self, ids: Tensor | list[int]) -> str:
        """Ids (cut at the first EOS) -> the caption."""
        return self.vocab.decode(ids.tolist() if isinstance(ids, Tensor) else ids)

    def references(self, batch: Batch) -> list[list[str]]:
        """Every reference caption of each row's image (its own target alone when ids is None)."""
        if batch.ids is None:
            return [[self.words(row)] for row in batch.targets]
        return [[" ".join(c) for c in self._captions_of(int(i))] for i in batch.ids]

    def metrics(self, logits: Tensor, batch: Batch) -> dict[str, float]:
        """Corpus BLEU-1..4 and CIDEr-D of the argmax captions against all references of each image."""
        hypotheses = [self.words(row) for row in logits.argmax(-1)]
        references = self.references(batch)
        return {**bleu(hypotheses, references), "cider": cider(hypotheses, references)}

    def token_names(self) -> list[str]:
        """The locations: "r,c" for each cell of the grid, row-major (the inputs are not tokens)."""
        rows, cols = self.grid
        return [f"{r},{c}" for r in range(rows) for c in range(cols)]

    def target_names(self) -> list[str]:
        """Caption words by id."""
        return self.vocab.tokens(range(len(self.vocab)))

    def render(self, batch: Batch, index: int = 0, logits: Tensor | None = None) -> str:
        refs = self.references(batch.rows(slice(index, index + 1)))[0]
        text = "references:\n" + "\n".join(f"  {r}" for r in refs)
        if logits is not None:
            text += f"\npredicted: {self.words(logits[index].argmax(-1))}"
        return text

    def digit_hits(self, image: int, alphas: Tensor) -> tuple[int, int]:
        """scenes: of the digit words of image `image`'s caption, how many got their peak attention on
        the cell of the digit they name, and how many there are.

        The m-th digit word of a caption (word 4m + 1) names the m-th digit from the left, so a
        decoded caption is scored by where its digit words looked, whichever digits it named.

        Args:
            image: a Batch.ids entry of a scenes task.
            alphas: (n, L) the weights of each decoding step (n may be shorter than the caption).
        Returns:
            (hits, digit words scored).
        """
        cells = self.named_cells(image)  # one entry per reference word, -1 for a, left, of
        scored = [(t, cell) for t, cell in enumerate(cells) if cell >= 0 and t < alphas.shape[0]]
        hits = sum(int(alphas[t].argmax()) == cell for t, cell in scored)
        return hits, len(scored)
