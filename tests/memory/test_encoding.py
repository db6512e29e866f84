import pytest
import torch

from attnlab.memory.encoding import encode_sentences, padding_sums, position_weights


def test_position_weights_match_the_formula_by_loops():
    tokens = torch.tensor([[4, 2, 7, 0, 0], [3, 0, 0, 0, 0], [5, 1, 1, 2, 9]])
    d = 6
    got = position_weights(tokens, d)
    assert got.shape == (3, 5, d)
    for row in range(3):
        words = [w for w in tokens[row].tolist() if w != 0]
        big_j = len(words)
        for j in range(1, 6):
            for k in range(1, d + 1):
                want = (1 - j / big_j) - (k / d) * (1 - 2 * j / big_j) if j <= big_j else 0.0
                assert got[row, j - 1, k - 1].item() == pytest.approx(want, abs=1e-6)


def test_position_encoded_sentences_are_the_formula_weighted_sums_of_their_words():
    torch.manual_seed(0)
    d = 5
    embedding = torch.nn.Embedding(9, d, padding_idx=0)
    tokens = torch.tensor([[[4, 2, 7, 0], [0, 3, 0, 8]], [[1, 0, 0, 0], [0, 0, 0, 0]]])  # (2, 2, 4), padding anywhere
    got = encode_sentences(embedding, tokens, "position")
    assert got.shape == (2, 2, d)
    for b in range(2):
        for i in range(2):
            words = [w for w in tokens[b, i].tolist() if w != 0]
            big_j = len(words)
            want = torch.zeros(d)
            for j, w in enumerate(words, start=1):
                for k in range(1, d + 1):
                    want[k - 1] += ((1 - j / big_j) - (k / d) * (1 - 2 * j / big_j)) * embedding.weight[w, k - 1].item()
            torch.testing.assert_close(got[b, i], want, atol=1e-5, rtol=1e-5)
    weighted = (embedding(tokens) * position_weights(tokens, d)).sum(-2)  # (2, 2, d)
    torch.testing.assert_close(got, weighted, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(encode_sentences(embedding, tokens, "bow"), embedding(tokens).sum(-2))


def test_centred_encoding_is_the_released_codes_formula_by_loops():
    torch.manual_seed(0)
    d, fixed = 5, 6
    embedding = torch.nn.Embedding(9, d, padding_idx=0)
    tokens = torch.tensor([[4, 2, 7, 0, 0], [0, 3, 0, 8, 1]])  # (2, 5): J is fixed, not the words counted
    got = encode_sentences(embedding, tokens, "centred", length=fixed)
    for b in range(2):
        words = [w for w in tokens[b].tolist() if w != 0]
        want = torch.zeros(d)
        for j, w in enumerate(words, start=1):
            for k in range(1, d + 1):
                weight = centred(j, k, fixed, d)
                want[k - 1] += weight * embedding.weight[w, k - 1].item()
        torch.testing.assert_close(got[b], want, atol=1e-5, rtol=1e-5)


def centred(j, k, length, d):
    """The released code's l_kj, by its formula."""
    return 1 + 4 * (k - (d + 1) / 2) * (j - (length + 1) / 2) / (d * length)


def test_padding_sums_add_the_weights_of_the_padding_positions_by_loops():
    d, fixed = 5, 7
    padding = torch.tensor([[False, False, True, True, True], [True, True, True, True, True], [False] * 5])
    got = padding_sums(padding, "centred", fixed, d)
    assert got.shape == (3, d)
    for row in range(3):
        for k in range(1, d + 1):
            want = sum(centred(j, k, fixed, d) for j in range(1, 6) if padding[row, j - 1])
            assert got[row, k - 1].item() == pytest.approx(want, abs=1e-5)
    torch.testing.assert_close(padding_sums(padding, "bow", fixed, d), torch.tensor([[3.0], [5.0], [0.0]]).expand(3, d))
    with pytest.raises(ValueError, match="'position'"):
        padding_sums(padding, "position", fixed, d)


def test_a_sentence_with_its_padding_as_a_word_adds_the_padding_sums():
    torch.manual_seed(0)
    d, fixed = 4, 6
    embedding = torch.nn.Embedding(9, d)  # row 0 is not zero here: padding read as a word
    tokens = torch.tensor([[4, 2, 7, 0, 0], [3, 0, 0, 0, 0]])  # (2, 5), words first
    with torch.no_grad():
        plain = encode_sentences(embedding, tokens, "centred", length=fixed)
        whole = torch.zeros(2, d)
        for b in range(2):
            for j in range(1, 6):
                for k in range(1, d + 1):
                    whole[b, k - 1] += centred(j, k, fixed, d) * embedding.weight[tokens[b, j - 1], k - 1]
    want = plain + padding_sums(tokens == 0, "centred", fixed, d) * embedding.weight[0].detach()
    torch.testing.assert_close(want, whole, atol=1e-5, rtol=1e-5)
