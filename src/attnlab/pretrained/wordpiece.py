"""WordPiece tokenisation for BERT-family folders, through the `tokenizers` library.

WordPiece (Schuster & Nakajima 2012; Wu et al. 2016, section 4.1) splits each word greedily into
the longest vocabulary pieces, continuation pieces marked "##"; BERT (Devlin et al. 2019, section
3) lower-cases and strips accents first (uncased models), splits on whitespace and punctuation,
and wraps a sentence as [CLS] A [SEP]. The folder's tokenizer.json is used as is; without one,
the same pipeline is assembled from vocab.txt. Batches are right-padded with [PAD] and carry a
mask (True = real token) and each token's character span, so probes can find words in the text.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import Tensor

if TYPE_CHECKING:
    from tokenizers import Tokenizer

SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")


@dataclass
class Batch:
    """Tokenised sentences, right-padded to the longest."""

    ids: Tensor  # (b, t) token ids
    mask: Tensor  # (b, t) bool, True for real tokens
    token_types: Tensor  # (b, t) segment ids
    tokens: list[list[str]]  # the real tokens of each sentence ([CLS] ... [SEP])
    offsets: list[list[tuple[int, int]]]  # character span of each real token; (0, 0) for special tokens


class WordPiece:
    """A `tokenizers.Tokenizer` with BERT's template, truncated to max_length, padded here per batch."""

    def __init__(self, tokenizer: Tokenizer, *, max_length: int, pad_id: int):
        self.tokenizer = tokenizer
        self.tokenizer.no_padding()  # tokenizer.json may pad every input to a fixed length; we pad per batch
        self.tokenizer.enable_truncation(max_length)
        self.max_length = max_length
        self.pad_id = pad_id

    @classmethod
    def from_folder(cls, folder: Path, *, max_length: int, pad_id: int, lowercase: bool = True) -> WordPiece:
        """From folder/tokenizer.json, else folder/vocab.txt (with `lowercase`); ValueError naming the file."""
        from tokenizers import Tokenizer

        tok_json, vocab = folder / "tokenizer.json", folder / "vocab.txt"
        try:
            if tok_json.is_file():
                return cls(Tokenizer.from_file(str(tok_json)), max_length=max_length, pad_id=pad_id)
            if vocab.is_file():
                return cls(bert_tokenizer(vocab, lowercase), max_length=max_length, pad_id=pad_id)
        except Exception as err:  # the tokenizers library raises bare Exceptions on bad files
            raise ValueError(
                f"{tok_json if tok_json.is_file() else vocab}: cannot read the tokenizer ({err})"
            ) from None
        raise ValueError(f"{folder}: no tokenizer.json or vocab.txt")

    def __call__(self, sentences: Sequence[str]) -> Batch:
        encodings = self.tokenizer.encode_batch(list(sentences))
        b, t = len(encodings), max(len(e.ids) for e in encodings)
        ids = torch.full((b, t), self.pad_id, dtype=torch.long)  # (b, t)
        types = torch.zeros((b, t), dtype=torch.long)  # (b, t)
        mask = torch.zeros((b, t), dtype=torch.bool)  # (b, t)
        for n, e in enumerate(encodings):
            ids[n, : len(e.ids)] = torch.tensor(e.ids)
            types[n, : len(e.ids)] = torch.tensor(e.type_ids)
            mask[n, : len(e.ids)] = True
        return Batch(ids, mask, types, [list(e.tokens) for e in encodings], [list(e.offsets) for e in encodings])


def bert_tokenizer(vocab: Path, lowercase: bool) -> Tokenizer:
    """BERT's WordPiece pipeline from a vocab.txt: normaliser, whitespace/punctuation split, [CLS] A [SEP]."""
    from tokenizers import Tokenizer, normalizers, pre_tokenizers, processors
    from tokenizers.models import WordPiece as WordPieceModel

    ids = WordPieceModel.read_file(str(vocab))
    missing = [t for t in ("[UNK]", "[CLS]", "[SEP]") if t not in ids]
    if missing:
        raise ValueError(f"the vocabulary lacks {missing}")
    tok = Tokenizer(WordPieceModel(ids, unk_token="[UNK]", max_input_chars_per_word=100))
    # strip_accents left unset follows `lowercase`, which is how BERT's uncased models were trained
    tok.normalizer = normalizers.BertNormalizer(clean_text=True, handle_chinese_chars=True, lowercase=lowercase)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", ids["[CLS]"]), ("[SEP]", ids["[SEP]"])],
    )
    tok.add_special_tokens([t for t in SPECIAL_TOKENS if t in ids])  # never split, e.g. a literal "[MASK]"
    return tok


def check_sentences(sentences: Sequence[str] | str) -> list[str]:
    """A list of non-empty strings (one string is one sentence); ValueError naming the bad one."""
    if isinstance(sentences, str):
        sentences = [sentences]
    sentences = list(sentences)
    if not sentences:
        raise ValueError("expected at least one sentence; got none")
    for n, s in enumerate(sentences):
        if not isinstance(s, str) or not s.strip():
            raise ValueError(f"sentence {n} is empty or not a string: {s!r}")
    return sentences
