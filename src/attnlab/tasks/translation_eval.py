"""Using and scoring a trained translation model: translate text, read its alignments, score a split.

    translate(task, model, ["ein Hund läuft ."], beam_size=5)   -> ["a dog runs ."]
    alignment(task, model, "ein Hund läuft .")                  -> Alignment (weights, labels)
    check_sources(task, sentences, truncate=True)                -> a note per sentence that is cut
    score_split(task, model, "test", beam_size=1)                -> BLEU, chrF, tokenised BLEU, by length
    alignment_errors(task, model)                                -> AER per cross-attention (toy corpus)

Decoding is attnlab.models.decoding (batched greedy or beam search); the scores are
attnlab.tasks.translation_metrics; the weights are read from a trace of the model's own
cross-attention modules, so whatever a family attends with is what is scored and drawn.

Sentences a user gives (`translate`, `alignment`) are never cut silently: an empty one, or one of
more tokens than the run's task.max_len, is a ConfigError unless truncate=True cuts it to max_len.
The scored splits are cut to max_len by design (TranslationConfig.max_len), so `score_split`
translates them as they are.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from attnlab.data.subword import EOS
from attnlab.errors import ConfigError
from attnlab.models.decoding import as_decoder, beam_search, cross_attention, greedy
from attnlab.models.registry import TaskModel
from attnlab.spec import PAD
from attnlab.tasks.translation import TranslationTask
from attnlab.tasks.translation_metrics import (
    alignment_error_rate,
    attention_alignment,
    bleu,
    bleu_by_length,
    chrf,
    tokenized_bleu,
)

LENGTH_BINS = (10, 15, 20, 25, 30, 40, 60)  # upper edges of the source-length buckets, in words


def check_sources(task: TranslationTask, sentences: list[str], *, truncate: bool = False) -> list[str]:
    """Check source sentences a user gave: each has tokens, and at most task.config.max_len of them.

    Returns:
        one note per sentence that is longer than max_len, saying how far truncate cuts it.
    Raises:
        ConfigError: an empty sentence (or one without source tokens), or, unless truncate, one
            longer than max_len; the message names the sentence (1-based), its length and the limit.
    """
    vocab, limit, count = task.vocabs[0], task.config.max_len, len(sentences)
    notes = []
    for k, sentence in enumerate(sentences, start=1):
        length = len(vocab.encode(sentence)) if sentence.strip() else 0
        if length == 0:
            raise ConfigError(f"sentence {k} of {count} is empty (no source tokens in {sentence!r})")
        if length > limit and not truncate:
            raise ConfigError(
                f"sentence {k} of {count} has {length} tokens, more than the run's task.max_len of {limit}"
                " (--truncate cuts it)"
            )
        if length > limit:
            notes.append(f"sentence {k} of {count} cut from {length} to {limit} tokens (the run's task.max_len)")
    return notes


def _encode_sources(task: TranslationTask, sentences: list[str]) -> Tensor:
    """Source sentences -> (b, s) ids, right-padded, cut to max_len (unchecked: see check_sources)."""
    vocab = task.vocabs[0]
    rows = [vocab.encode(s)[: task.config.max_len] or [PAD] for s in sentences]
    out = torch.full((len(rows), max(len(r) for r in rows)), PAD, dtype=torch.long)  # (b, s)
    for i, row in enumerate(rows):
        out[i, : len(row)] = torch.tensor(row)
    return out


@torch.no_grad()
def decode_ids(
    model: TaskModel, inputs: Tensor, *, beam_size: int = 1, max_len: int, chunk: int = 128
) -> list[list[int]]:
    """Output ids per row (without EOS) of greedy (beam_size 1) or beam-search decoding, in chunks."""
    model.eval()
    out: list[list[int]] = []
    for start in range(0, inputs.shape[0], chunk):
        part = inputs[start : start + chunk]
        if beam_size == 1:
            ids = greedy(as_decoder(model), part, max_len)
        else:
            ids = beam_search(as_decoder(model), part, beam_size, max_len)
        for row in ids.tolist():
            row = row[: row.index(EOS)] if EOS in row else row
            out.append([t for t in row if t != PAD])
    return out


def translate(
    task: TranslationTask, model: TaskModel, sentences: list[str], *, beam_size: int = 1, truncate: bool = False
) -> list[str]:
    """Translations of the given source sentences (checked by `check_sources`; truncate cuts long ones)."""
    check_sources(task, sentences, truncate=truncate)
    return _translations(task, model, sentences, beam_size)


def _translations(task: TranslationTask, model: TaskModel, sentences: list[str], beam_size: int) -> list[str]:
    """Translations of sentences as they are, each cut to max_len."""
    ids = decode_ids(model, _encode_sources(task, sentences), beam_size=beam_size, max_len=task.spec.answer_len)
    return [task.vocabs[1].decode(row) for row in ids]


@dataclass
class Alignment:
    """One sentence's cross-attention: weights (i target tokens + EOS, j source tokens)."""

    weights: list[Tensor]  # one (h, i, j) tensor per cross-attention module (layer)
    source: list[str]  # j source token strings
    target: list[str]  # i target token strings, the last one "</s>"
    translation: str


def targets_with_eos(rows: list[list[int]], limit: int) -> Tensor:
    """Output ids per row -> (b, n <= limit) ids: each row cut to limit - 1 tokens, then EOS, then PAD."""
    rows = [row[: limit - 1] for row in rows]
    out = torch.full((len(rows), max(len(r) for r in rows) + 1), PAD, dtype=torch.long)  # (b, n)
    for i, row in enumerate(rows):
        out[i, : len(row) + 1] = torch.tensor([*row, EOS])
    return out


def alignment(
    task: TranslationTask, model: TaskModel, sentence: str, *, beam_size: int = 1, truncate: bool = False
) -> Alignment:
    """Translate one sentence and read the cross-attention of the translation it produced.

    The sentence is checked by `check_sources` (truncate cuts it to max_len when longer).
    """
    check_sources(task, [sentence], truncate=truncate)
    inputs = _encode_sources(task, [sentence])  # (1, s)
    ids = decode_ids(model, inputs, beam_size=beam_size, max_len=task.spec.answer_len)
    outputs = targets_with_eos(ids, task.spec.answer_len)  # (1, i)
    weights = cross_attention(model, inputs, outputs)  # [(1, h, i, j)]
    src_vocab, tgt_vocab = task.vocabs
    shown = outputs[0, :-1].tolist()
    return Alignment(
        [w[0] for w in weights],
        src_vocab.tokens(inputs[0].tolist()),
        [*tgt_vocab.tokens(shown), "</s>"],
        tgt_vocab.decode(ids[0]),
    )


@torch.no_grad()
def score_split(
    task: TranslationTask, model: TaskModel, split: str = "test", *, beam_size: int = 1, limit: int | None = None
) -> dict:
    """BLEU (sacrebleu, detokenised, cased), chrF, lowercased tokenised BLEU and BLEU by source length.

    References are the split's raw target sentences (never the subword round trip), so the scores
    are comparable with published ones on the same test set.
    """
    data = task.split(split)
    count = len(data.texts) if limit is None else min(limit, len(data.texts))
    sources = [s for s, _ in data.texts[:count]]
    references = [t for _, t in data.texts[:count]]
    hypotheses = _translations(task, model, sources, beam_size)  # cut to max_len by design
    return {
        "split": split,
        "sentences": count,
        "beam_size": beam_size,
        "bleu": bleu(hypotheses, references),
        "chrf": chrf(hypotheses, references),
        "tokenized_bleu": tokenized_bleu(hypotheses, references),
        "bleu_by_length": [
            {"bin": label, "sentences": n, "bleu": value}
            for label, n, value in bleu_by_length(sources, hypotheses, references, LENGTH_BINS)
        ],
        "examples": [
            {"source": s, "reference": r, "translation": h}
            for s, r, h in list(zip(sources, references, hypotheses))[:5]
        ],
    }


@torch.no_grad()
def alignment_errors(task: TranslationTask, model: TaskModel, split: str = "test", *, threshold: float = 0.3) -> dict:
    """Alignment error rate of every cross-attention module against the toy pair's known alignments.

    The model is teacher-forced on the reference translations, so every attention row belongs to a
    reference word; each module's heads are averaged. Returns {module index: {"argmax", "threshold"}}.
    """
    if task.config.corpus != "toy":
        raise ValueError(f"corpus: alignment error rates need the toy pair's alignments, not {task.config.corpus!r}")
    data = task.split(split)
    gold = task.raw()[f"{split}_alignments"]
    inputs = task.rows(data, list(range(len(data.sources)))).inputs  # (b, s)
    weights = cross_attention(model, inputs, targets_with_eos(data.targets, task.spec.answer_len))  # [(b, h, i, j)]
    out = {}
    for layer, w in enumerate(weights):
        mean = w.mean(dim=1)  # (b, i, j)
        result = {}
        for mode in ("argmax", "threshold"):
            links = [
                attention_alignment(
                    mean[k, : len(data.targets[k]), : len(data.sources[k])], mode=mode, threshold=threshold
                )
                for k in range(len(data.sources))
            ]
            result[mode] = alignment_error_rate(links, gold)
        out[layer] = result
    return out
