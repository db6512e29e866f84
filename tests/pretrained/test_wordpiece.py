"""attnlab.pretrained.wordpiece: tokenisation against the reference tokenizers, from tokenizer.json and vocab.txt."""

import os

os.environ["HF_HUB_OFFLINE"] = "1"

import pytest

from attnlab.pretrained import load_encoder
from attnlab.pretrained.wordpiece import WordPiece, check_sentences

TRICKY = [
    "Hello, WORLD!! naïve café RÉSUMÉ",
    "東京 is in 日本; Ελληνικά and русский текст",
    "don't e-mail me at x@y.com #hashtag (really?)",
    "supercalifragilisticexpialidocious antidisestablishmentarianism",
    "tabs\tand  spaces\n\nnewlines \u00a0 nbsp \u200b zero-width",
    "emoji 🤖🎉 and symbols © ™ ½ ≥",
    "3.14159, 1,000,000 and 2024-01-01T12:00",
    "a [MASK] token and [SEP] inside the text",
]


@pytest.fixture(scope="module")
def encoder():
    return load_encoder()


def test_tokenisation_equals_reference_tokenizers(encoder, tmp_path):
    transformers = pytest.importorskip("transformers", reason="transformers is a test-only extra")
    slow = transformers.BertTokenizer(str(encoder.path / "vocab.txt"), do_lower_case=True)  # pure-Python WordPiece
    ours = encoder.tokenize(TRICKY)
    # The fallback path: a folder with vocab.txt but no tokenizer.json builds WordPiece from the vocab.
    for name in ("config.json", "model.safetensors", "vocab.txt", "tokenizer_config.json"):
        (tmp_path / name).symlink_to(encoder.path / name)
    from_vocab = load_encoder(tmp_path).tokenize(TRICKY)
    for n, text in enumerate(TRICKY):
        expected = slow(text)["input_ids"]
        got = ours.ids[n, ours.mask[n]].tolist()
        assert got == expected, text
        assert from_vocab.ids[n, from_vocab.mask[n]].tolist() == expected, text
    long_words = ours.tokens[3]
    assert long_words[0] == "[CLS]" and long_words[-1] == "[SEP]" and len(long_words) > 6  # split into pieces
    rejoined = "".join(t[2:] if t.startswith("##") else " " + t for t in long_words[1:-1]).split()
    assert rejoined == TRICKY[3].split()


def test_long_input_is_truncated_to_max_seq_length(encoder):
    batch = encoder.tokenize(["word " * 1000])
    assert batch.ids.shape == (1, 256)  # sentence_bert_config.json: max_seq_length 256
    assert batch.tokens[0][-1] == "[SEP]"


def test_check_sentences():
    assert check_sentences("one") == ["one"]
    with pytest.raises(ValueError, match="at least one"):
        check_sentences([])
    with pytest.raises(ValueError, match="sentence 1 is empty"):
        check_sentences(["fine", " "])


def test_bad_tokenizer_files_are_errors_naming_them(tmp_path):
    (tmp_path / "vocab.txt").write_text("hello\nworld\n")
    with pytest.raises(ValueError, match=r"vocab\.txt: cannot read the tokenizer \(the vocabulary lacks \['\[UNK\]'"):
        WordPiece.from_folder(tmp_path, max_length=16, pad_id=0)
    (tmp_path / "tokenizer.json").write_text('{"version": "1.0", "model": 3}')
    with pytest.raises(ValueError, match=r"tokenizer\.json: cannot read the tokenizer"):
        WordPiece.from_folder(tmp_path, max_length=16, pad_id=0)
    with pytest.raises(ValueError, match=r"no tokenizer.json or vocab.txt"):
        WordPiece.from_folder(tmp_path / "x", max_length=16, pad_id=0)


def test_batch_pads_right_with_a_mask(encoder):
    batch = encoder.tokenize(["a b c d e", "a"])
    assert batch.mask.tolist() == [[True] * 7, [True] * 3 + [False] * 4]
    assert batch.ids[1, 3:].tolist() == [0] * 4 and batch.tokens[1] == ["[CLS]", "a", "[SEP]"]
    assert batch.offsets[0][:3] == [(0, 0), (0, 1), (2, 3)]
