"""Word senses: does self-attention turn one input vector into context-dependent vectors?

An ambiguous word ("bank" of a river or of money) enters BERT (Devlin et al. 2019) as the same
token embedding in every sentence; each self-attention layer mixes in the other tokens, so its
output x_l(word) can differ by sense. Following the contextual-embedding probes of Wiedemann et
al. 2019 ("Does BERT Make Any Sense?", nearest-neighbour word-sense disambiguation) and Ethayarajh
2019 (how contextual each layer is), for each layer l we ask how well x_l separates the senses:

    1-NN accuracy     each occurrence takes the sense of its nearest other occurrence of the same
                      word (cosine); leave-one-out; chance is about 50%
    2-means accuracy  2-means on the unit-normalised vectors of one word, scored under the better
                      of the two cluster-to-sense matchings; chance is >= 50%

Layer 0 is the embedding output LN(E_token + E_position + E_segment): identical for every
occurrence up to its position, so it is the "input embedding" baseline. A non-contextual control
averages the layer-0 vectors of the whole sentence (a bag of static word vectors).
The 2-D picture is one word's vectors on their top two principal components (PCA).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import Tensor

from attnlab.probes.pronouns import token_indices
from attnlab.probes.sense_sentences import SENSES
from attnlab.viz.probes import draw_projections

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from attnlab.pretrained import PretrainedEncoder


@dataclass(frozen=True)
class SenseExample:
    word: str  # the ambiguous word
    sense: str  # which of its senses this sentence uses
    text: str  # the sentence
    span: tuple[int, int]  # the word's character span


def sense_examples(words: Sequence[str] | None = None) -> list[SenseExample]:
    """The sentences of `words` (default: all of SENSES), with the word located in each."""
    out = []
    for word in SENSES if words is None else words:
        if word not in SENSES:
            raise ValueError(f"sense_examples: no sentences for {word!r}; known words: {sorted(SENSES)}")
        for sense, sentences in SENSES[word].items():
            for text in sentences:
                hits = [m.span() for m in re.finditer(rf"(?<!\w){re.escape(word)}(?!\w)", text, re.IGNORECASE)]
                if len(hits) != 1:
                    raise ValueError(f"sense_examples: {word!r} occurs {len(hits)} times in {text!r}; expected once")
                out.append(SenseExample(word, sense, text, hits[0]))
    return out


@torch.no_grad()
def word_vectors(
    encoder: PretrainedEncoder, examples: Sequence[SenseExample], *, batch_size: int = 32
) -> tuple[Tensor, Tensor]:
    """The word's vector at every layer, and the bag-of-static-vectors control.

    Returns:
        (L + 1, n, d): mean over the word's WordPiece tokens of each layer's hidden state;
        (n, d): mean of the layer-0 vectors of all the sentence's real tokens except [CLS]/[SEP].
    """
    words, bags = [], []
    for start in range(0, len(examples), batch_size):
        chunk = examples[start : start + batch_size]
        states, batch = encoder.hidden_states([e.text for e in chunk])  # (L + 1, b, t, d)
        for n, e in enumerate(chunk):
            idx = token_indices(batch.offsets[n], e.span)
            real = [k for k, (s, t) in enumerate(batch.offsets[n]) if t > s]
            words.append(states[:, n, idx].mean(1))  # (L + 1, d)
            bags.append(states[0, n, real].mean(0))  # (d,)
    return torch.stack(words, dim=1), torch.stack(bags)  # (L + 1, n, d), (n, d)


def nearest_neighbour_accuracy(vectors: Tensor, senses: Sequence[str]) -> float:
    """Leave-one-out 1-NN (cosine) accuracy of (n, d) vectors of one word against their senses.

    Equally near neighbours (identical vectors, as at layer 0 for two occurrences at the same
    position) share the vote, so ties score their fraction of same-sense neighbours, not whichever
    comes first in the list.
    """
    unit = F.normalize(vectors.double(), dim=-1)
    sim = unit @ unit.T  # (n, n)
    sim.fill_diagonal_(float("-inf"))
    nearest = sim >= sim.max(1, keepdim=True).values - 1e-12  # (n, n) the tied nearest of each row
    names = sorted(set(senses))
    label = torch.tensor([names.index(s) for s in senses])  # (n,)
    same = (label[None, :] == label[:, None]).double()  # (n, n)
    return float(((nearest * same).sum(1) / nearest.sum(1)).mean())


def two_means_accuracy(vectors: Tensor, senses: Sequence[str], *, steps: int = 50) -> float:
    """2-means on the unit-normalised vectors of one word with two senses; best cluster-to-sense matching."""
    names = sorted(set(senses))
    if len(names) != 2:
        raise ValueError(f"two_means_accuracy: expected two senses; got {names}")
    x = F.normalize(vectors.double(), dim=-1)  # (n, d)
    # Deterministic start: the point farthest from the mean, then the point farthest from it.
    first = int((x - x.mean(0)).norm(dim=1).argmax())
    second = int((x - x[first]).norm(dim=1).argmax())
    centres = x[[first, second]]  # (2, d)
    for _ in range(steps):
        assign = torch.cdist(x, centres).argmin(1)  # (n,)
        new = torch.stack([x[assign == c].mean(0) if bool((assign == c).any()) else centres[c] for c in (0, 1)])
        if torch.equal(new, centres):
            break
        centres = new
    truth = torch.tensor([names.index(s) for s in senses])
    agree = float((assign == truth).double().mean())
    return max(agree, 1.0 - agree)


def separation(vectors: Tensor, examples: Sequence[SenseExample]) -> dict[str, list[float] | dict]:
    """Per layer: 1-NN and 2-means accuracy averaged over words, and each word's own figures.

    Args:
        vectors: (L + 1, n, d) or (n, d) (one "layer") vectors aligned with `examples`.
    """
    if vectors.dim() == 2:
        vectors = vectors[None]  # (1, n, d)
    words = sorted({e.word for e in examples})
    per_word: dict[str, dict[str, list[float]]] = {w: {"nn": [], "two_means": []} for w in words}
    for layer in vectors:
        for w in words:
            idx = [k for k, e in enumerate(examples) if e.word == w]
            senses = [examples[k].sense for k in idx]
            per_word[w]["nn"].append(nearest_neighbour_accuracy(layer[idx], senses))
            per_word[w]["two_means"].append(two_means_accuracy(layer[idx], senses))
    mean = {
        m: [sum(per_word[w][m][n] for w in words) / len(words) for n in range(len(vectors))]
        for m in ("nn", "two_means")
    }
    return {"nn": mean["nn"], "two_means": mean["two_means"], "per_word": per_word}


def project_2d(vectors: Tensor) -> Tensor:
    """(n, d) -> (n, 2): the scores on the top two principal components.

    With X the centred vectors and X = U S V^T, the scores are X V = U S; they come from the small
    (n, n) Gram matrix X X^T = U S^2 U^T, which is cheaper than an SVD of X when n << d.
    """
    centred = vectors.double() - vectors.double().mean(0)  # (n, d)
    eigvals, eigvecs = torch.linalg.eigh(centred @ centred.T)  # (n,), (n, n), ascending
    top = eigvals[-2:].flip(0).clamp(min=0)  # (2,)
    return (eigvecs[:, -2:].flip(1) * top.sqrt()).float()  # (n, 2)


def draw_senses(
    vectors: Tensor,
    examples: Sequence[SenseExample],
    *,
    layers: Sequence[int],
    path: str | Path | None = None,
    words: Sequence[str] | None = None,
) -> Figure:
    """One row per word, one column per layer: each occurrence projected to 2-D, coloured by sense.

    Projects with `project_2d` and draws with attnlab.viz.probes.draw_projections.

    Args:
        vectors: (L + 1, n, d) from `word_vectors`.
        layers: which layers to draw (0 = input embeddings).
        path: save here (.png or .svg).
    """
    words = sorted({e.word for e in examples}) if words is None else list(words)
    points, groups = [], []
    for w in words:
        idx = [k for k, e in enumerate(examples) if e.word == w]
        points.append([project_2d(vectors[layer, idx]) for layer in layers])  # per layer (n_w, 2)
        groups.append([f"{w} ({examples[k].sense})" for k in idx])
    titles = ["input embeddings (layer 0)" if layer == 0 else f"layer {layer}" for layer in layers]
    return draw_projections(points, groups, col_titles=titles, path=path)
