import pytest
import sacrebleu
import torch

from attnlab.tasks.translation_metrics import (
    alignment_error_rate,
    attention_alignment,
    bleu,
    bleu_by_length,
    chrf,
    tokenized_bleu,
    word_weights,
)

REFERENCES = [
    "A man in an orange hat starring at something.",
    "A Boston Terrier is running on lush green grass in front of a white fence.",
    "A girl in karate uniform breaking a stick with a front kick.",
]
HYPOTHESES = [
    "A man in an orange hat looks at something.",
    "A terrier runs on green grass in front of a white fence.",
    "A girl in a karate uniform breaks a stick with a kick.",
]


def test_identical_texts_score_100_and_disjoint_texts_0():
    assert bleu(REFERENCES, REFERENCES) == pytest.approx(100.0)
    assert chrf(REFERENCES, REFERENCES) == pytest.approx(100.0)
    assert tokenized_bleu(REFERENCES, REFERENCES) == pytest.approx(100.0)
    disjoint = ["xyz qqq", "zzz www vvv", "kkk"]
    assert bleu(disjoint, REFERENCES) == 0.0 and tokenized_bleu(disjoint, REFERENCES) == 0.0
    assert bleu([], []) == 0.0


def test_bleu_and_chrf_are_sacrebleu_defaults():
    expected = sacrebleu.corpus_bleu(HYPOTHESES, [REFERENCES]).score
    assert bleu(HYPOTHESES, REFERENCES) == pytest.approx(expected)
    assert 0 < bleu(HYPOTHESES, REFERENCES) < 100
    assert chrf(HYPOTHESES, REFERENCES) == pytest.approx(sacrebleu.corpus_chrf(HYPOTHESES, [REFERENCES]).score)
    with pytest.raises(ValueError, match="differ in number"):
        bleu(HYPOTHESES, REFERENCES[:2])


def test_bleu_is_cased_and_tokenized_bleu_is_not():
    upper = [h.upper() for h in HYPOTHESES]
    assert bleu(upper, REFERENCES) < bleu(HYPOTHESES, REFERENCES)
    assert tokenized_bleu(upper, REFERENCES) == pytest.approx(tokenized_bleu(HYPOTHESES, REFERENCES))
    lowered = sacrebleu.corpus_bleu([h.lower() for h in HYPOTHESES], [[r.lower() for r in REFERENCES]]).score
    assert tokenized_bleu(HYPOTHESES, REFERENCES) == pytest.approx(lowered)


def test_bleu_by_length_buckets_by_source_words():
    sources = ["a b", "a b c", "a b c d e", "a b c d e f g"]  # 2, 3, 5, 7 words
    references = ["the cat sat on the mat", "a dog ran far away", "one two three four", "red green blue and yellow"]
    hypotheses = [references[0], "x y z w", references[2], "red green blue and yellow"]
    rows = bleu_by_length(sources, hypotheses, references, (3, 5))
    assert [(label, n) for label, n, _ in rows] == [("3", 2), ("5", 1), (">5", 1)]
    assert rows[0][2] == pytest.approx(bleu(hypotheses[:2], references[:2]))
    assert rows[1][2] == pytest.approx(100.0) and rows[2][2] == pytest.approx(100.0)
    # an empty bucket has no sentences and BLEU 0
    assert bleu_by_length(sources, hypotheses, references, (1, 3, 5))[0] == ("1", 0, 0.0)
    with pytest.raises(ValueError, match="increasing"):
        bleu_by_length(sources, hypotheses, references, (5, 3))


def test_alignment_error_rate_from_the_formula():
    sure = [{(0, 0), (1, 2)}]
    possible = [{(0, 0), (1, 2), (2, 1)}]
    predicted = [{(0, 0), (2, 1), (2, 2)}]
    # |A∩S| = 1, |A∩P| = 2, |A| = 3, |S| = 2
    assert alignment_error_rate(predicted, sure, possible) == pytest.approx(1 - (1 + 2) / (3 + 2))
    # without possible links P = S: |A∩S| = |A∩P| = 1
    assert alignment_error_rate(predicted, sure) == pytest.approx(1 - (1 + 1) / (3 + 2))
    assert alignment_error_rate(sure, sure) == 0.0
    assert alignment_error_rate([{(5, 5)}], sure) == 1.0
    # over a corpus the counts are summed before dividing: (1+1 + 2+2) / (3+2 + 2+2)
    two = alignment_error_rate([predicted[0], {(0, 1), (1, 0)}], [sure[0], {(0, 1), (1, 0)}])
    assert two == pytest.approx(1 - (2 + 4) / (5 + 4))
    assert alignment_error_rate([set()], [set()]) == 0.0
    with pytest.raises(ValueError, match="number of sentences"):
        alignment_error_rate(predicted, sure + sure)


def test_attention_alignment_argmax_and_threshold():
    weights = torch.tensor([  # (i=3 target, j=4 source)
        [0.70, 0.10, 0.10, 0.10],
        [0.05, 0.05, 0.45, 0.45],
        [0.00, 0.00, 0.00, 0.00],  # a fully masked row
    ])
    argmax = attention_alignment(weights, "argmax")
    assert argmax == {(0, 0), (2, 1)}
    assert attention_alignment(weights, "threshold", threshold=0.4) == {(0, 0), (2, 1), (3, 1)}
    assert attention_alignment(weights, "threshold", threshold=0.8) == set()
    with pytest.raises(ValueError, match="mode"):
        attention_alignment(weights, "top2")
    with pytest.raises(ValueError, match=r"\(i, j\)"):
        attention_alignment(weights[0])


def test_word_weights_sum_source_subwords_and_average_target_subwords():
    weights = torch.tensor([  # 3 target subwords (words 0, 0, 1) over 4 source subwords (words 0, 1, 1, EOS)
        [0.1, 0.2, 0.3, 0.4],
        [0.3, 0.2, 0.1, 0.4],
        [0.5, 0.25, 0.25, 0.0],
    ])
    out = word_weights(weights, [0, 1, 1, None], [0, 0, 1])
    expected = torch.tensor([
        [(0.1 + 0.3) / 2, (0.2 + 0.3 + 0.2 + 0.1) / 2],
        [0.5, 0.5],
    ])
    assert torch.allclose(out, expected)
    # word rows are still distributions when the subword rows were
    full = word_weights(weights[2:].repeat(2, 1), [0, 1, 1, 2], [0, 1])
    assert torch.allclose(full.sum(-1), torch.ones(2))
    with pytest.raises(ValueError, match="must match"):
        word_weights(weights, [0, 1], [0, 0, 1])
