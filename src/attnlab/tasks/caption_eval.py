"""Using and scoring a trained captioning model: caption image files, read where each word looked, score a split.

    caption_files(task, model, ["dog.jpg"], beam_size=3)     -> ["a dog runs through the grass"]
    looked(task, model, ["dog.jpg"], beam_size=3)            -> [Looked(words, alphas (n, L), image)]
    score_split(task, model, "test", beam_size=3)            -> BLEU-1..4, CIDEr-D, METEOR, examples

Decoding is attnlab.models.decoding (batched greedy or beam search, via
attnlab.tasks.translation_eval.decode_ids); the weights are read from a trace of the decoder's
attention, teacher-forced on the caption it chose (`models.decoding.cross_attention`), which are
the weights that chose each word; the scores are attnlab.tasks.caption_metrics.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from attnlab.data.subword import EOS
from attnlab.models.decoding import cross_attention
from attnlab.models.registry import TaskModel
from attnlab.tasks.caption_metrics import caption_scores
from attnlab.tasks.captioning import CaptionTask
from attnlab.tasks.translation_eval import decode_ids


@dataclass
class Looked:
    """One image's caption and where each of its words looked."""

    words: list[str]  # the caption's words, then "<end>"
    alphas: Tensor  # (len(words), L) the attention of the step that wrote each word
    image: Tensor  # (c, H, W) the picture, values in [0, 1]
    picks: list[int] | None = None  # hard attention: a location sampled from each word's alpha; else None


def sampled_locations(alphas: Tensor, seed: int = 0) -> list[int]:
    """Where a hard-attention model looks at each step: s_t ~ Multinoulli(alpha_t), seeded.

    Args:
        alphas: (n, L) the weights of n steps.
    Returns:
        n location indices.
    """
    generator = torch.Generator().manual_seed(seed)
    return torch.multinomial(alphas.clamp(min=0), 1, generator=generator)[:, 0].tolist()  # (n,)


def is_hard(model: TaskModel) -> bool:
    """Whether a captioning model's words look at sampled locations (hard attention)."""
    return getattr(getattr(model, "config", None), "attention", None) == "hard"


def caption_inputs(task: CaptionTask, model: TaskModel, inputs: Tensor, *, beam_size: int = 1) -> list[list[int]]:
    """Caption word ids (no EOS) for annotation vectors inputs (b, L, D)."""
    return decode_ids(model, inputs, beam_size=beam_size, max_len=task.spec.answer_len)


def caption_files(task: CaptionTask, model: TaskModel, paths: list[Path], *, beam_size: int = 1) -> list[str]:
    """A caption for each image file."""
    ids = caption_inputs(task, model, task.encode_images(paths), beam_size=beam_size)
    return [task.words(row) for row in ids]


def caption_attention(
    task: CaptionTask, model: TaskModel, inputs: Tensor, *, beam_size: int = 1
) -> list[tuple[list[int], Tensor | None]]:
    """Caption annotation vectors and read the attention of each step of the caption chosen.

    Args:
        inputs: (b, L, D) annotation vectors.
    Returns:
        per image: the word id of each step (EOS included where the caption ended; a caption that
        never ended has no EOS step) and alphas (steps, L), None for a model that does not attend.
    """
    found = []
    for k, row in enumerate(caption_inputs(task, model, inputs, beam_size=beam_size)):
        ids = [*row, EOS][: task.spec.answer_len]  # (i,)
        weights = cross_attention(model, inputs[k : k + 1], torch.tensor([ids]))  # [(1, 1, i, L)], or none
        found.append((ids, weights[0][0, 0] if weights else None))  # (i, L)
    return found


def looked(task: CaptionTask, model: TaskModel, paths: list[Path], *, beam_size: int = 1) -> list[Looked]:
    """Caption each image file and read the attention of every word of the caption it chose."""
    inputs = task.encode_images(paths)  # (b, L, D)
    found = []
    for k, (ids, alphas) in enumerate(caption_attention(task, model, inputs, beam_size=beam_size)):
        words = [*task.vocab.tokens(ids)]
        words = [*words[:-1], "<end>"] if ids[-1] == EOS else words  # the step that ended the caption
        alphas = inputs.new_zeros(len(words), inputs.shape[1]) if alphas is None else alphas  # (i, L)
        picks = sampled_locations(alphas) if is_hard(model) else None
        found.append(Looked(words, alphas, task.image_file(paths[k]), picks))
    return found


@torch.no_grad()
def score_split(
    task: CaptionTask, model: TaskModel, split: str = "test", *, beam_size: int = 1, limit: int | None = None
) -> dict:
    """BLEU-1..4, CIDEr-D and METEOR (when Java runs it) of the model's captions of a split's images,
    each against all of the image's references, and a few examples."""
    data = task.eval_set(limit if limit is not None else 10**9, split)
    hypotheses = [task.words(row) for row in caption_inputs(task, model, data.inputs, beam_size=beam_size)]
    references = task.references(data)
    return {
        "split": split,
        "images": len(hypotheses),
        "beam_size": beam_size,
        **caption_scores(hypotheses, references),
        "examples": [{"caption": h, "references": r} for h, r in list(zip(hypotheses, references))[:5]],
    }
