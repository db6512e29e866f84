"""Translation as a task of the training loop: a source sentence in, its translation out.

Rows are source ids (b, s) padded on the right with PAD, and target ids (b, n): the translation's
tokens, then EOS, then PAD (`TaskSpec.eos_id`). The decoding families (seq2seq, bahdanau, luong,
encdec) teacher-force the targets while training and decode greedily in eval; the loss is the
cross-entropy over the real target tokens and EOS, PAD ignored.

Corpora:
    "toy"       a generated language pair with known word alignments (attnlab.data.toy_pair):
                no data needed, whole words as tokens; alignment error rates are scored on it
    "multi30k"  Multi30k (Elliott et al. 2016) from `{data_dir or ATTNLAB_DATA}/multi30k/`:
                train / val / test2016, subword vocabularies trained on train with `tokenizers`
    "tsv"       `source<TAB>target` lines from the file `path`, the last 10% held out (half val,
                half test)

The vocabularies are part of the run: the training loop saves them beside the weights
(`save_assets`), and a rebuilt run loads them back (`load_assets`) before anything else, so
`attnlab translate` needs no data.

Training batches hold sentences of similar length (consecutive pairs in source-length order from
a random start), so little of a batch is padding; each batch is cut to its longest sentence.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor

from attnlab.data.parallel import DataError, multi30k_dir, read_parallel, read_tsv
from attnlab.data.subword import EOS, Subword, WordVocab
from attnlab.data.toy_pair import ToyPairConfig, generate_pairs
from attnlab.spec import PAD, TaskSpec
from attnlab.tasks.base import TASKS, Batch, Task
from attnlab.tasks.translation_metrics import bleu, chrf

CORPORA = ("toy", "multi30k", "tsv")
ASSETS = ("source.json", "target.json")  # the vocabularies in a run folder


@dataclass(frozen=True)
class TranslationConfig:
    corpus: str = "toy"  # "toy" (generated pair), "multi30k" or "tsv"
    source: str = "de"  # multi30k: source language suffix of the files
    target: str = "en"  # multi30k: target language suffix
    path: str = ""  # tsv: the file of source<TAB>target lines
    data_dir: str = ""  # the folder holding multi30k/; empty = env ATTNLAB_DATA
    vocab_size: int = 8000  # subword vocabulary per side (multi30k, tsv)
    lowercase: bool = False  # lowercase both sides before subwords (tsv, multi30k)
    max_len: int = 40  # s and n - 1: longer training pairs are dropped, longer eval pairs cut
    toy_pairs: int = 20000  # toy: training pairs (val and test get 1000 each)
    toy_max_adjectives: int = 2  # toy: adjectives per noun phrase at most (longer sentences)
    seed: int = 0  # toy: seeds the generated pairs
    label_smoothing: float = 0.0  # epsilon of the training loss's smoothed targets (Vaswani et al. 2017 used 0.1)

    def __post_init__(self) -> None:
        if not 0.0 <= self.label_smoothing < 1.0:
            raise ValueError(f"label_smoothing must be in [0, 1), got {self.label_smoothing}")
        if self.corpus not in CORPORA:
            raise ValueError(f"corpus must be one of {', '.join(CORPORA)}, got {self.corpus!r}")
        if self.corpus == "tsv" and not self.path:
            raise ValueError("path: corpus 'tsv' needs the file of source<TAB>target lines")
        for name, low in (("vocab_size", 8), ("max_len", 2), ("toy_pairs", 10)):
            if getattr(self, name) < low:
                raise ValueError(f"{name} must be >= {low}, got {getattr(self, name)}")


@dataclass
class _Split:
    """Encoded pairs of one split, sorted by source length (training batches read runs of it)."""

    sources: list[list[int]]
    targets: list[list[int]]  # without EOS
    texts: list[tuple[str, str]]  # the raw (source, target) sentences


@TASKS.register("translate")
class TranslationTask(Task):
    """Translate source sentences; metric: BLEU of the greedy translations on the val split."""

    Config = TranslationConfig
    config: TranslationConfig
    metric = "bleu"

    def __init__(self, config: TranslationConfig | None = None):
        super().__init__(config)
        self._vocabs: tuple[Subword | WordVocab, Subword | WordVocab] | None = None
        self._raw: dict[str, list] | None = None
        self._splits: dict[str, _Split] = {}

    # -- data ---------------------------------------------------------------------------------
    def raw(self) -> dict[str, list]:
        """The corpus as text: {"train"|"val"|"test": [(source, target)]} (toy: + "alignments")."""
        if self._raw is None:
            self._raw = _read_corpus(self.config)
        return self._raw

    @property
    def vocabs(self) -> tuple[Subword | WordVocab, Subword | WordVocab]:
        """(source, target) vocabularies: loaded from a run folder, or built from the training text."""
        if self._vocabs is None:
            train = self.raw()["train"]
            src, tgt = [s for s, _ in train], [t for _, t in train]
            if self.config.corpus == "toy":
                self._vocabs = WordVocab.build(src), WordVocab.build(tgt)
            else:
                size, lower = self.config.vocab_size, self.config.lowercase
                self._vocabs = (
                    Subword.train(src, size, lowercase=lower),
                    Subword.train(tgt, size, lowercase=lower),
                )
        return self._vocabs

    def save_assets(self, folder: str | Path) -> None:
        """Write the vocabularies into a run folder."""
        for vocab, name in zip(self.vocabs, ASSETS):
            vocab.save(Path(folder) / name)

    def load_assets(self, folder: str | Path) -> None:
        """Use the vocabularies saved in a run folder (when it holds them)."""
        paths = [Path(folder) / name for name in ASSETS]
        if all(p.exists() for p in paths):
            kind = WordVocab if self.config.corpus == "toy" else Subword
            self._vocabs = kind.load(paths[0]), kind.load(paths[1])

    def split(self, name: str) -> _Split:
        """The encoded pairs of "train", "val" or "test"; training pairs longer than max_len dropped."""
        if name not in self._splits:
            src_vocab, tgt_vocab = self.vocabs
            pairs = self.raw()[name]
            limit = self.config.max_len
            sources = [src_vocab.encode(s) for s, _ in pairs]
            targets = [tgt_vocab.encode(t) for _, t in pairs]
            keep = list(range(len(pairs)))
            if name == "train":
                keep = [i for i in keep if 0 < len(sources[i]) <= limit and 0 < len(targets[i]) <= limit]
                keep.sort(key=lambda i: (len(sources[i]), len(targets[i])))
            self._splits[name] = _Split(
                [sources[i][:limit] for i in keep], [targets[i][:limit] for i in keep], [pairs[i] for i in keep]
            )
        return self._splits[name]

    @property
    def spec(self) -> TaskSpec:
        src_vocab, tgt_vocab = self.vocabs
        n = self.config.max_len + 1  # max_len tokens, then EOS
        return TaskSpec(  # seq_len bounds the sources (max_len) and is kept >= n, as every family checks
            seq_len=n, answer_len=n, vocab_size=len(src_vocab), num_outputs=len(tgt_vocab), eos_id=EOS
        )

    def rows(self, split: _Split, index: list[int], full_length: bool = False) -> Batch:
        """A batch of the given pairs; targets padded to answer_len when full_length, else to the longest."""
        sources = [split.sources[i] for i in index]
        targets = [split.targets[i] + [EOS] for i in index]
        s = max(len(x) for x in sources)
        n = self.spec.answer_len if full_length else max(len(y) for y in targets)
        inputs = torch.full((len(index), s), PAD, dtype=torch.long)  # (b, s)
        answers = torch.full((len(index), n), PAD, dtype=torch.long)  # (b, n)
        for row, (x, y) in enumerate(zip(sources, targets)):
            inputs[row, : len(x)] = torch.tensor(x)
            answers[row, : len(y)] = torch.tensor(y)
        return Batch(inputs, answers)

    def sample(self, batch_size: int, generator: torch.Generator) -> Batch:
        train = self.split("train")
        size = len(train.sources)
        if size == 0:
            raise DataError("translate: no training pair is short enough for max_len")
        start = int(torch.randint(max(1, size - batch_size + 1), (1,), generator=generator))
        index = [(start + k) % size for k in range(batch_size)]
        return self.rows(train, index)

    def eval_set(self, size: int, split: str = "val") -> Batch:
        if split not in ("val", "test"):
            raise ValueError(f"split must be 'val' or 'test', got {split!r}")
        data = self.split(split)
        return self.rows(data, list(range(min(size, len(data.sources)))), full_length=True)

    # -- scoring ------------------------------------------------------------------------------
    def loss(self, logits: Tensor, batch: Batch) -> Tensor:
        """logits (b, n, o) -> mean cross-entropy over target tokens and EOS (PAD ignored), against
        targets smoothed by label_smoothing (1 - eps on the word, eps spread over all o classes)."""
        n = batch.targets.shape[1]
        return F.cross_entropy(
            logits[:, :n].flatten(0, 1),
            batch.targets.flatten(),
            ignore_index=PAD,
            label_smoothing=self.config.label_smoothing,
        )

    def detokenize(self, ids: Tensor | list[int], side: str = "target") -> str:
        """Ids (cut at the first EOS) -> a sentence of the given side."""
        vocab = self.vocabs[0 if side == "source" else 1]
        return vocab.decode(ids.tolist() if isinstance(ids, Tensor) else ids)  # decode stops at EOS, skips PAD

    def metrics(self, logits: Tensor, batch: Batch) -> dict[str, float]:
        """BLEU and chrF (sacrebleu, detokenised, cased) of the argmax translations against the targets."""
        hypotheses = [self.detokenize(row) for row in logits.argmax(-1)]
        references = [self.detokenize(row) for row in batch.targets]
        answers = batch.targets != PAD  # (b, n)
        right = (logits[:, : batch.targets.shape[1]].argmax(-1) == batch.targets) & answers
        return {
            "bleu": bleu(hypotheses, references),
            "chrf": chrf(hypotheses, references),
            "token_accuracy": (right.sum() / answers.sum().clamp(min=1)).item(),
        }

    def token_names(self) -> list[str]:
        """Source token strings by id (the inputs' vocabulary)."""
        return self.vocabs[0].tokens(range(len(self.vocabs[0])))

    def target_names(self) -> list[str]:
        """Target token strings by id."""
        return self.vocabs[1].tokens(range(len(self.vocabs[1])))

    def render(self, batch: Batch, index: int = 0, logits: Tensor | None = None) -> str:
        text = (
            f"source: {self.detokenize(batch.inputs[index], 'source')}\ntarget: {self.detokenize(batch.targets[index])}"
        )
        if logits is not None:
            text += f"\npredicted: {self.detokenize(logits[index].argmax(-1))}"
        return text


def _read_corpus(config: TranslationConfig) -> dict[str, list]:
    """The three splits of the configured corpus as (source, target) text pairs."""
    if config.corpus == "toy":
        cfg = ToyPairConfig(seed=config.seed, max_adjectives=config.toy_max_adjectives)
        out: dict[str, list] = {}
        for name, count, offset in (("train", config.toy_pairs, 0), ("val", 1000, 1), ("test", 1000, 2)):
            generated = generate_pairs(count, config.seed * 3 + offset, cfg)
            out[name] = [(" ".join(p.source), " ".join(p.target)) for p in generated]
            out[f"{name}_alignments"] = [p.alignment for p in generated]
        return out
    if config.corpus == "multi30k":
        folder = multi30k_dir(config.data_dir or None)
        return {
            name: read_parallel(folder, split, config.source, config.target)
            for name, split in (("train", "train"), ("val", "val"), ("test", "test2016"))
        }
    pairs = read_tsv(config.path)
    if len(pairs) < 20:
        raise DataError(f"{config.path}: {len(pairs)} pairs; a tsv corpus needs at least 20 (10% are held out)")
    held = max(2, len(pairs) // 10)
    train, rest = pairs[:-held], pairs[-held:]
    return {"train": train, "val": rest[: held // 2], "test": rest[held // 2 :]}
