"""Scores of translations and of attention read as word alignment.

Translation quality (sacreBLEU, Post 2018, "A Call for Clarity in Reporting BLEU Scores"):

    bleu            corpus BLEU-4 (Papineni et al. 2002) on detokenised, cased text: sacrebleu's
                    defaults (13a tokenisation, case-sensitive, exponential smoothing), 0-100
    chrf            corpus chrF (Popović 2015), sacrebleu's defaults (character 6-grams, beta 2)
    tokenized_bleu  lowercased corpus BLEU-4 after 13a tokenisation, the way Multi30k tables are
                    usually reported
    bleu_by_length  corpus BLEU per bucket of source length (Bahdanau et al. 2015, Fig. 2)

Alignment (Och & Ney 2003, "A Systematic Comparison of Various Statistical Alignment Models"):
with predicted links A, sure links S and possible links P ⊇ S,

    AER = 1 - (|A ∩ S| + |A ∩ P|) / (|A| + |S|)

summed over a corpus before dividing. A link (j, i) joins source word j to target word i. An
attention matrix (i target positions, j source positions) becomes links by `attention_alignment`;
`word_weights` first merges subword rows and columns into words, so alignments are scored on words.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence

import sacrebleu
import torch
from torch import Tensor

Link = tuple[int, int]  # (source position j, target position i)


def _check(hypotheses: Sequence[str], references: Sequence[str]) -> None:
    if len(hypotheses) != len(references):
        raise ValueError(f"hypotheses and references differ in number: {len(hypotheses)} vs {len(references)}")


def bleu(hypotheses: Sequence[str], references: Sequence[str]) -> float:
    """Corpus BLEU (0-100) of detokenised, cased sentences, one reference each (sacrebleu defaults).

    An empty corpus scores 0.
    """
    _check(hypotheses, references)
    if not hypotheses:
        return 0.0
    return float(sacrebleu.corpus_bleu(list(hypotheses), [list(references)]).score)


def chrf(hypotheses: Sequence[str], references: Sequence[str]) -> float:
    """Corpus chrF (0-100) with sacrebleu's defaults, one reference each; 0 for an empty corpus."""
    _check(hypotheses, references)
    if not hypotheses:
        return 0.0
    return float(sacrebleu.corpus_chrf(list(hypotheses), [list(references)]).score)


def tokenized_bleu(hypotheses: Sequence[str], references: Sequence[str]) -> float:
    """Lowercased, tokenised corpus BLEU-4 (0-100), the figure Multi30k results usually quote.

    Computes sacrebleu's corpus BLEU with lowercase=True and its 13a tokeniser (the mteval-v13a
    rules: punctuation split off words), n-grams up to 4, the brevity penalty, and exponential
    smoothing where an n-gram order has no match. Published tables mostly ran multi-bleu.perl on
    Moses-tokenised lowercased text; the tokenisers differ in a few cases (e.g. apostrophes), so
    numbers are close to those, not identical.
    """
    _check(hypotheses, references)
    if not hypotheses:
        return 0.0
    metric = sacrebleu.metrics.BLEU(lowercase=True, tokenize="13a")
    return float(metric.corpus_score(list(hypotheses), [list(references)]).score)


def bleu_by_length(
    sources: Sequence[str], hypotheses: Sequence[str], references: Sequence[str], bins: Iterable[int]
) -> list[tuple[str, int, float]]:
    """Corpus BLEU of the sentences in each bucket of source length (whitespace words).

    Args:
        sources, hypotheses, references: one entry per sentence.
        bins: increasing upper edges, e.g. (10, 20, 30): buckets 1-10, 11-20, 21-30 and >30.
    Returns:
        [(label, sentences, bleu)] per bucket in order, labelled by the upper edge ("10", "20",
        "30") and ">30" for the rest; a bucket without sentences has BLEU 0.
    """
    edges = list(bins)
    if not edges or any(b <= a for a, b in itertools.pairwise(edges)):
        raise ValueError(f"bins must be increasing upper edges, got {edges}")
    _check(hypotheses, references)
    if len(sources) != len(hypotheses):
        raise ValueError(f"sources and hypotheses differ in number: {len(sources)} vs {len(hypotheses)}")
    buckets: list[list[int]] = [[] for _ in range(len(edges) + 1)]
    for k, source in enumerate(sources):
        length = len(source.split())
        buckets[next((b for b, edge in enumerate(edges) if length <= edge), len(edges))].append(k)
    labels = [str(edge) for edge in edges] + [f">{edges[-1]}"]
    return [
        (label, len(index), bleu([hypotheses[k] for k in index], [references[k] for k in index]))
        for label, index in zip(labels, buckets)
    ]


def alignment_error_rate(
    predicted: Sequence[Iterable[Link]],
    sure: Sequence[Iterable[Link]],
    possible: Sequence[Iterable[Link]] | None = None,
) -> float:
    """Corpus AER = 1 - (|A∩S| + |A∩P|) / (|A| + |S|), each count summed over sentences.

    Args:
        predicted: per sentence, the links A.
        sure: per sentence, the sure links S.
        possible: per sentence, the possible links P (S is added to them: P ⊇ S); None: P = S.
    Returns:
        AER in [0, 1]; 0 when there are no predicted and no sure links at all.
    """
    possible = sure if possible is None else possible
    if not len(predicted) == len(sure) == len(possible):
        raise ValueError(
            "predicted, sure and possible differ in number of sentences: "
            f"{len(predicted)}, {len(sure)}, {len(possible)}"
        )
    hits_sure = hits_possible = size_a = size_s = 0
    for a, s, p in zip(predicted, sure, possible):
        a, s = set(a), set(s)
        p = set(p) | s
        hits_sure += len(a & s)
        hits_possible += len(a & p)
        size_a += len(a)
        size_s += len(s)
    if size_a + size_s == 0:
        return 0.0
    return 1.0 - (hits_sure + hits_possible) / (size_a + size_s)


def attention_alignment(weights: Tensor, mode: str = "argmax", threshold: float = 0.3) -> set[Link]:
    """Links (j, i) read off one attention matrix.

    Args:
        weights: (i, j) attention of target position i over source position j.
        mode: "argmax": each target position links to its most attended source position (a row of
            zeros, e.g. fully masked, links nowhere); "threshold": every weight above `threshold`.
        threshold: the weight a link must exceed in "threshold" mode.
    Returns:
        The set of (source position j, target position i).
    """
    weights = torch.as_tensor(weights).detach().float().cpu()
    if weights.dim() != 2:
        raise ValueError(f"weights must be (i, j), got shape {tuple(weights.shape)}")
    if mode == "argmax":
        if weights.shape[1] == 0:
            return set()
        best = weights.argmax(dim=1)  # (i,)
        live = weights.amax(dim=1) > 0  # (i,)
        return {(int(j), i) for i, (j, ok) in enumerate(zip(best.tolist(), live.tolist())) if ok}
    if mode == "threshold":
        return {(int(j), int(i)) for i, j in (weights > threshold).nonzero().tolist()}
    raise ValueError(f"mode must be 'argmax' or 'threshold', got {mode!r}")


def word_weights(weights: Tensor, src_word_ids: Sequence[int | None], tgt_word_ids: Sequence[int | None]) -> Tensor:
    """Merge a subword attention matrix into a word one.

    A target word's row is the mean of its subwords' rows (each row is a distribution over the
    source); a source word's column is the sum of its subwords' columns (the attention the word
    received). Rows still sum to what the subword rows summed to, over the kept source columns.

    Args:
        weights: (i, j) attention over subwords.
        src_word_ids: for each of the j source subwords its word index, None to leave it out
            (e.g. EOS); `Subword.word_ids` gives these.
        tgt_word_ids: the same for the i target subwords.
    Returns:
        (I, J) attention over words, I and J one more than the largest word index given.
    """
    weights = torch.as_tensor(weights).float()
    i, j = weights.shape
    if len(tgt_word_ids) != i or len(src_word_ids) != j:
        raise ValueError(
            f"word ids ({len(tgt_word_ids)} target, {len(src_word_ids)} source) "
            f"must match weights {tuple(weights.shape)}"
        )
    source = _one_hot(src_word_ids)  # (j, J)
    target = _one_hot(tgt_word_ids)  # (i, I)
    summed = target.T @ weights @ source  # (I, J)
    counts = target.sum(dim=0).clamp(min=1)  # (I,)
    return summed / counts[:, None]  # (I, J)


def _one_hot(word_ids: Sequence[int | None]) -> Tensor:
    """(n, W): row k is the one-hot of word_ids[k], zeros where it is None."""
    size = max((w for w in word_ids if w is not None), default=-1) + 1
    out = torch.zeros(len(word_ids), size)  # (n, W)
    for k, w in enumerate(word_ids):
        if w is not None:
            out[k, w] = 1.0
    return out
