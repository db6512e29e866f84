"""attnlab.probes.senses: the sentence set, separation measures on planted vectors, and the real encoder's vectors."""

import pytest
import torch

from attnlab.probes.sense_sentences import SENSES
from attnlab.probes.senses import (
    draw_senses,
    nearest_neighbour_accuracy,
    project_2d,
    sense_examples,
    separation,
    two_means_accuracy,
    word_vectors,
)


def test_every_word_has_two_senses_of_a_few_dozen_sentences():
    examples = sense_examples()
    for word, senses in SENSES.items():
        assert len(senses) == 2
        for sense, sentences in senses.items():
            assert len(sentences) >= 20 and len(set(sentences)) == len(sentences), (word, sense)
    assert all(e.text[slice(*e.span)].lower() == e.word for e in examples)
    with pytest.raises(ValueError, match="no sentences for 'lute'"):
        sense_examples(["lute"])


def two_clusters(n=10, d=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    centres = torch.randn(2, d, generator=g) * 5
    senses = ["a"] * n + ["b"] * n
    x = torch.cat([centres[0] + torch.randn(n, d, generator=g), centres[1] + torch.randn(n, d, generator=g)])
    return x, senses


def test_separated_clusters_score_perfectly_whatever_the_sense_names():
    x, senses = two_clusters()
    assert nearest_neighbour_accuracy(x, senses) == 1.0
    assert two_means_accuracy(x, senses) == 1.0
    swapped = ["b" if s == "a" else "a" for s in senses]
    assert two_means_accuracy(x, swapped) == 1.0


def test_identical_vectors_score_chance_not_list_order():
    x = torch.ones(8, 4)
    senses = ["a"] * 4 + ["b"] * 4
    # every other occurrence is equally near: 3 of the 7 share the sense
    assert nearest_neighbour_accuracy(x, senses) == pytest.approx(3 / 7)


def test_nearest_neighbour_against_a_naive_loop():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(12, 5, generator=g)
    senses = ["a", "b", "a", "a", "b", "b", "a", "b", "b", "a", "a", "b"]
    right = 0
    for n in range(12):
        sims = [float(torch.cosine_similarity(x[n], x[k], dim=0)) if k != n else -2.0 for k in range(12)]
        right += senses[max(range(12), key=sims.__getitem__)] == senses[n]
    assert nearest_neighbour_accuracy(x, senses) == pytest.approx(right / 12)


def test_project_2d_equals_the_svd_projection():
    x, _ = two_clusters(d=9)
    centred = x.double() - x.double().mean(0)
    _, _, vh = torch.linalg.svd(centred, full_matrices=False)
    ref = centred @ vh[:2].T
    got = project_2d(x).double()
    assert got.shape == (20, 2)
    assert torch.allclose(got.abs(), ref.abs(), atol=1e-4)  # principal axes are defined up to sign


@pytest.fixture(scope="module")
def real():
    from attnlab.pretrained import load_encoder

    bank = sense_examples(["bank"])
    examples = [e for k, e in enumerate(bank) if k % 4 == 0 or e.text.startswith("The bank ")]  # both senses
    vectors, bags = word_vectors(load_encoder(), examples)
    return examples, vectors, bags


def test_word_vectors_shapes_and_input_embedding_property(real):
    examples, vectors, bags = real
    assert vectors.shape == (7, len(examples), 384) and bags.shape == (len(examples), 384)
    # "The bank ..." in both senses: same token at the same position, so layer 0 is identical, later layers are not
    money = next(k for k, e in enumerate(examples) if e.sense == "money" and e.text.startswith("The bank "))
    river = next(k for k, e in enumerate(examples) if e.sense == "river" and e.text.startswith("The bank "))
    assert torch.allclose(vectors[0, money], vectors[0, river], atol=1e-6)
    assert not torch.allclose(vectors[6, money], vectors[6, river], atol=1e-2)


def test_separation_reports_every_layer(real, tmp_path):
    examples, vectors, bags = real
    sep = separation(vectors, examples)
    assert len(sep["nn"]) == len(sep["two_means"]) == 7
    assert sep["per_word"]["bank"]["nn"] == sep["nn"]  # one word: the mean is that word
    assert all(0.0 <= v <= 1.0 for v in sep["nn"] + sep["two_means"])
    assert len(separation(bags, examples)["nn"]) == 1
    fig = draw_senses(vectors, examples, layers=[0, 6], path=tmp_path / "senses.png")
    assert len(fig.axes) == 2 and (tmp_path / "senses.png").stat().st_size > 1000
