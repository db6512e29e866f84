import json

import pytest

from attnlab.data.subword import EOS, UNK, Subword, WordVocab
from attnlab.errors import DataError
from attnlab.spec import PAD

TEXTS = [
    "Two young, White males are outside near many bushes.",
    "Several men in hard hats are operating a giant pulley system.",
    "A little girl climbing into a wooden playhouse.",
    "A man in a blue shirt is standing on a ladder cleaning windows.",
    "Two men are at the stove preparing food.",
    "A man in green holds a guitar while the other man observes his shirt.",
    "A man is smiling at a stuffed lion",
    "A trendy girl talking on her cellphone while gliding slowly down the street.",
] * 3


@pytest.fixture(scope="module")
def subword():
    return Subword.train(TEXTS, 120)


def test_special_ids():
    assert (PAD, UNK, EOS) == (0, 1, 2)
    vocab = Subword.train(TEXTS, 60)
    assert vocab.tokens([PAD, UNK, EOS]) == ["<pad>", "<unk>", "</s>"]
    words = WordVocab.build(["a b", "b c"])
    assert words.tokens([PAD, UNK, EOS]) == ["<pad>", "<unk>", "</s>"]


def test_round_trip_keeps_case_punctuation_and_spacing(subword):
    for sentence in [*TEXTS[:8], "A girl, two men and a guitar.", "Several men are near a stove"]:
        ids = subword.encode(sentence)
        assert EOS not in ids and PAD not in ids and UNK not in ids
        assert subword.decode(ids) == sentence


def test_decode_stops_at_eos_skips_pad_and_writes_unk(subword):
    ids = subword.encode("A man is smiling")
    assert subword.decode([*ids, EOS, *subword.encode("at a lion"), PAD]) == "A man is smiling"
    assert subword.decode([PAD, *ids, PAD]) == "A man is smiling"
    # "Z" and "!" never occur in the training text
    zebra = subword.encode("A Zebra!")
    assert zebra.count(UNK) == 2 and subword.decode(zebra).count("<unk>") == 2


def test_lowercase_option_lowercases_the_encoding():
    vocab = Subword.train(TEXTS, 120, lowercase=True)
    assert vocab.decode(vocab.encode("Two Men")) == "two men"
    assert vocab.encode("TWO MEN") == vocab.encode("two men")


def test_training_is_deterministic_and_merges_frequent_words(subword):
    again = Subword.train(list(TEXTS), 120)
    assert len(again) == len(subword) and again.tokenizer.to_str() == subword.tokenizer.to_str()
    assert len(subword) <= 120
    # a frequent word becomes one token once merges run, and tokens mark word starts
    assert subword.tokens(subword.encode("man")) == ["▁man"]
    small = Subword.train(TEXTS, 40)
    assert len(small.encode(TEXTS[0])) > len(subword.encode(TEXTS[0]))


def test_word_ids_group_subwords_into_whitespace_words(subword):
    sentence = "A trendy girl, gliding."
    ids = subword.encode(sentence)
    word_ids = subword.word_ids(ids)
    assert word_ids[0] == 0 and word_ids[-1] == len(sentence.split()) - 1
    assert word_ids == sorted(word_ids) and set(word_ids) == set(range(len(sentence.split())))
    for word in range(len(sentence.split())):
        pieces = [t for t, w in zip(subword.tokens(ids), word_ids) if w == word]
        assert "".join(pieces).lstrip("▁") == sentence.split()[word]


def test_save_and_load_give_the_same_vocabulary(tmp_path, subword):
    subword.save(tmp_path / "run" / "source.json")  # the run folder is created
    loaded = Subword.load(tmp_path / "run" / "source.json")
    assert len(loaded) == len(subword)
    assert loaded.tokens(range(len(loaded))) == subword.tokens(range(len(subword)))
    for sentence in TEXTS[:8]:
        assert loaded.encode(sentence) == subword.encode(sentence)
    loaded.save(tmp_path / "again.json")
    assert (tmp_path / "again.json").read_text() == (tmp_path / "run" / "source.json").read_text()


@pytest.mark.parametrize("kind", [Subword, WordVocab])
def test_loading_a_missing_or_corrupt_file_names_it(tmp_path, kind):
    missing = tmp_path / "absent.json"
    with pytest.raises(DataError, match=f"^{missing}: no such vocabulary file$"):
        kind.load(missing)
    corrupt = tmp_path / "corrupt.json"
    corrupt.write_text('{"version": "1.0", "model": ')
    with pytest.raises(DataError) as info:
        kind.load(corrupt)
    assert str(info.value).startswith(f"{corrupt}: not a ") and "\n" not in str(info.value)
    other = tmp_path / "other.json"
    (Subword.train(TEXTS, 60) if kind is WordVocab else WordVocab.build(TEXTS)).save(other)
    with pytest.raises(DataError, match=f"^{other}: "):
        kind.load(other)


def test_word_vocab_round_trip_unknowns_and_order(tmp_path):
    vocab = WordVocab.build(["the dog sees the cat", "the cat runs"])
    # specials, then by frequency, ties alphabetical
    assert vocab.tokens(range(len(vocab))) == ["<pad>", "<unk>", "</s>", "the", "cat", "dog", "runs", "sees"]
    ids = vocab.encode("the cat sees a dog")
    assert ids == [3, 4, 7, UNK, 5]
    assert vocab.decode(ids) == "the cat sees <unk> dog"
    assert vocab.decode([*vocab.encode("dog runs"), EOS, 3, 4]) == "dog runs"
    assert vocab.word_ids(ids) == [0, 1, 2, 3, 4]
    vocab.save(tmp_path / "target.json")
    loaded = WordVocab.load(tmp_path / "target.json")
    assert loaded.words == vocab.words and len(loaded) == len(vocab) == 8
    assert json.loads((tmp_path / "target.json").read_text())["kind"] == "words"
    # the same texts always give the same vocabulary
    assert WordVocab.build(["the cat runs", "the dog sees the cat"]).words == vocab.words
