"""Token vocabularies for translation: byte-pair subwords, or whole words.

`Subword` is byte-pair encoding (Sennrich et al. 2016, "Neural Machine Translation of Rare Words
with Subword Units", ACL) trained with the `tokenizers` library: NFKC normalisation (optionally
lowercasing), then a Metaspace pre-tokenizer that turns each space into "▁" at the start of the
next word, with punctuation split off so no merge crosses it. The "▁" marks make the encoding
reversible: `decode(encode(s))` gives back `s` (after NFKC, leading spaces dropped) with its
casing, punctuation and spacing. `WordVocab` maps whitespace-separated words to ids, for the
generated language pair, whose words are the units its alignments link.

Both share one interface (`encode`, `decode`, `tokens`, `word_ids`, `len`, `save`, `load`) and
the special ids PAD = 0, UNK = 1, EOS = 2. `encode` adds no EOS; `decode` stops at the first EOS,
skips PAD and writes UNK as "<unk>". Both serialise to JSON (the subword one in the tokenizer's own
format), so a run folder holds `source.json` and `target.json`.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path

from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

from attnlab.errors import DataError
from attnlab.spec import PAD

UNK = 1  # id of an unknown word or character
EOS = 2  # id that ends every target sentence
SPECIALS = ("<pad>", "<unk>", "</s>")  # the token strings of PAD, UNK and EOS, in id order
SPACE = "▁"  # Metaspace's stand-in for the space before a word


def _ids_until_eos(ids: Iterable[int]) -> list[int]:
    """The ids before the first EOS, PAD removed."""
    out = []
    for token in ids:
        token = int(token)
        if token == EOS:
            break
        if token != PAD:
            out.append(token)
    return out


def _open(path: Path) -> str:
    if not path.is_file():
        raise DataError(f"{path}: no such vocabulary file")
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise DataError(f"{path}: not a vocabulary file (not UTF-8 text)") from None


class Subword:
    """A byte-pair subword vocabulary (build it with `Subword.train` or `Subword.load`)."""

    def __init__(self, tokenizer: Tokenizer):
        self.tokenizer = tokenizer

    @classmethod
    def train(
        cls, texts: Iterable[str], vocab_size: int, *, lowercase: bool = False, min_frequency: int = 2
    ) -> Subword:
        """Learn BPE merges from the texts until the vocabulary holds vocab_size tokens.

        The same texts always give the same vocabulary. Every character seen in the texts is kept,
        so a small vocab_size may be exceeded by the alphabet.

        Args:
            texts: the sentences of one language.
            vocab_size: target number of tokens, the three special ones included.
            lowercase: lowercase before everything else (encoding lowercases too).
            min_frequency: a pair seen fewer times is never merged.
        """
        if vocab_size < len(SPECIALS) + 1:
            raise ValueError(f"vocab_size must be >= {len(SPECIALS) + 1}, got {vocab_size}")
        tokenizer = Tokenizer(models.BPE(unk_token=SPECIALS[UNK]))
        norm = [normalizers.NFKC()] + ([normalizers.Lowercase()] if lowercase else [])
        tokenizer.normalizer = normalizers.Sequence(norm)
        tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
            [
                pre_tokenizers.Metaspace(replacement=SPACE, prepend_scheme="always"),
                pre_tokenizers.Punctuation("isolated"),
            ]
        )
        tokenizer.decoder = decoders.Metaspace(replacement=SPACE, prepend_scheme="always")
        trainer = trainers.BpeTrainer(
            vocab_size=vocab_size, min_frequency=min_frequency, special_tokens=list(SPECIALS), show_progress=False
        )
        tokenizer.train_from_iterator(list(texts), trainer)
        return cls(tokenizer)

    def encode(self, text: str) -> list[int]:
        """A sentence -> its subword ids (no EOS)."""
        return self.tokenizer.encode(text, add_special_tokens=False).ids

    def decode(self, ids: Iterable[int]) -> str:
        """Ids -> a sentence: stops at the first EOS, skips PAD, writes UNK as "<unk>"."""
        return self.tokenizer.decode(_ids_until_eos(ids), skip_special_tokens=False)

    def tokens(self, ids: Iterable[int]) -> list[str]:
        """The subword string of each id ("▁" marks a word's start), for labelling attention maps."""
        return [self.tokenizer.id_to_token(int(i)) or SPECIALS[UNK] for i in ids]

    def word_ids(self, ids: Sequence[int]) -> list[int]:
        """The whitespace word each subword belongs to (0, 0, 1, ...): a word starts at a "▁" token."""
        out, word = [], -1
        for token in self.tokens(ids):
            if token.startswith(SPACE) or word < 0:
                word += 1
            out.append(word)
        return out

    def __len__(self) -> int:
        return self.tokenizer.get_vocab_size()

    def save(self, path: str | Path) -> None:
        """Write the tokenizer's own JSON serialisation (creating the folder if needed)."""
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(self.tokenizer.to_str(), encoding="utf-8")

    @classmethod
    def load(cls, path: str | Path) -> Subword:
        """Read a file written by `save`; DataError naming the file when it is absent or not one."""
        path = Path(path)
        text = _open(path)
        try:
            tokenizer = Tokenizer.from_str(text)
        except Exception as error:  # the library raises a plain Exception on malformed JSON
            reason = str(error).splitlines()[0] if str(error) else type(error).__name__
            raise DataError(f"{path}: not a subword vocabulary ({reason})") from None
        if [tokenizer.token_to_id(s) for s in SPECIALS] != [PAD, UNK, EOS]:
            raise DataError(f"{path}: expected special tokens {', '.join(SPECIALS)} at ids 0, 1, 2")
        return cls(tokenizer)


class WordVocab:
    """Whole whitespace-separated words as tokens (build with `WordVocab.build` or `WordVocab.load`)."""

    def __init__(self, words: Sequence[str]):
        self.words = list(words)  # id -> word; ids 0-2 are the special tokens
        if tuple(self.words[: len(SPECIALS)]) != SPECIALS:
            raise ValueError(f"words must start with {SPECIALS}, got {self.words[: len(SPECIALS)]}")
        self.index = {word: i for i, word in enumerate(self.words)}

    @classmethod
    def build(cls, texts: Iterable[str], *, min_count: int = 1) -> WordVocab:
        """Every word seen at least min_count times, most frequent first (ties alphabetical)."""
        counts = Counter(word for text in texts for word in text.split())
        kept = [w for w, n in counts.items() if n >= min_count and w not in SPECIALS]
        ranked = sorted(kept, key=lambda w: (-counts[w], w))
        return cls([*SPECIALS, *ranked])

    def encode(self, text: str) -> list[int]:
        """A sentence -> one id per whitespace word (UNK for unseen words; no EOS)."""
        return [self.index.get(word, UNK) for word in text.split()]

    def decode(self, ids: Iterable[int]) -> str:
        """Ids -> words joined by spaces: stops at the first EOS, skips PAD, writes UNK as "<unk>"."""
        return " ".join(self.tokens(_ids_until_eos(ids)))

    def tokens(self, ids: Iterable[int]) -> list[str]:
        """The word of each id (ids outside the vocabulary read as "<unk>")."""
        return [self.words[i] if 0 <= i < len(self.words) else SPECIALS[UNK] for i in map(int, ids)]

    def word_ids(self, ids: Sequence[int]) -> list[int]:
        """Each token is its own word: 0, 1, 2, ..."""
        return list(range(len(ids)))

    def __len__(self) -> int:
        return len(self.words)

    def save(self, path: str | Path) -> None:
        """Write {"kind": "words", "words": [...]} as JSON (creating the folder if needed)."""
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(json.dumps({"kind": "words", "words": self.words}, ensure_ascii=False), encoding="utf-8")

    @classmethod
    def load(cls, path: str | Path) -> WordVocab:
        """Read a file written by `save`; DataError naming the file when it is absent or not one."""
        path = Path(path)
        try:
            data = json.loads(_open(path))
        except json.JSONDecodeError as error:
            reason = f"invalid JSON: {error.msg} at line {error.lineno}"
            raise DataError(f"{path}: not a word vocabulary ({reason})") from None
        words = data.get("words") if isinstance(data, dict) and data.get("kind") == "words" else None
        if not isinstance(words, list) or tuple(words[: len(SPECIALS)]) != SPECIALS:
            raise DataError(f"{path}: not a word vocabulary (expected kind 'words' and words starting {SPECIALS})")
        return cls(words)
