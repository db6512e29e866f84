"""Reading parallel corpora: sentence pairs of a source and a target language.

Two layouts:

    Multi30k (Elliott et al. 2016, "Multi30K: Multilingual English-German Image Descriptions")
        one file per split and language, `{split}.{lang}` (train.de, train.en, val.de, val.en,
        test2016.de, test2016.en), one sentence per line; line k of the source file translates
        line k of the target file. The folder is `{data_dir or ATTNLAB_DATA}/multi30k/`.
    tab-separated pairs
        `source<TAB>target` per line; further tab-separated columns (such as an attribution) are
        ignored.

Sentences keep their casing, punctuation and inner spacing; only the line end and surrounding
whitespace are removed. Blank lines at the end of a file are ignored; anywhere else a missing
sentence is an error. Every error is a `DataError` with a one-line message that starts with the
file (and line) at fault.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from attnlab.data.babi import data_root
from attnlab.errors import DataError

Pair = tuple[str, str]  # (source sentence, target sentence)


def _lines(path: Path) -> list[str]:
    """The file's lines without line ends, trailing blank lines dropped; DataError if absent or empty."""
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        raise DataError(f"{path}: not UTF-8 text ({error.reason} at byte {error.start})") from None
    lines = text.splitlines()
    while lines and not lines[-1].strip():
        lines.pop()
    if not lines:
        raise DataError(f"{path}: empty file, expected one sentence per line")
    return lines


def read_parallel(folder: str | Path, split: str, src_lang: str, tgt_lang: str) -> list[Pair]:
    """Line-aligned sentence pairs of one split, Multi30k layout.

    Args:
        folder: the folder holding `{split}.{lang}` files (e.g. `multi30k_dir()`).
        split: "train", "val", "test2016", ... (the file name before the language suffix).
        src_lang, tgt_lang: language suffixes, e.g. "de" and "en".
    Returns:
        [(source, target)] in file order, each sentence stripped of surrounding whitespace.
    Raises:
        DataError: a file is missing or empty, the two files differ in line count, or a line is blank.
    """
    src_path = Path(folder) / f"{split}.{src_lang}"
    tgt_path = Path(folder) / f"{split}.{tgt_lang}"
    sources, targets = _lines(src_path), _lines(tgt_path)
    if len(sources) != len(targets):
        raise DataError(
            f"{src_path} has {len(sources)} lines but {tgt_path} has {len(targets)}; the files must be line-aligned"
        )
    for path, lines in ((src_path, sources), (tgt_path, targets)):
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                raise DataError(f"{path}:{number}: empty sentence")
    return [(s.strip(), t.strip()) for s, t in zip(sources, targets)]


def read_tsv(path: str | Path) -> list[Pair]:
    """Sentence pairs from `source<TAB>target` lines; columns after the second are ignored.

    Raises:
        DataError: the file is missing or empty, a line has no tab, or a side of a line is empty
            (`file:line: ...`).
    """
    path = Path(path)
    pairs: list[Pair] = []
    for number, line in enumerate(_lines(path), start=1):
        fields = line.split("\t")
        if len(fields) < 2:
            raise DataError(f"{path}:{number}: expected 'source<TAB>target', found no tab")
        source, target = fields[0].strip(), fields[1].strip()
        for side, text in (("source", source), ("target", target)):
            if not text:
                raise DataError(f"{path}:{number}: empty {side} sentence")
        pairs.append((source, target))
    return pairs


def multi30k_dir(data_dir: str | Path | None = None) -> Path:
    """`data_root(data_dir) / "multi30k"`; DataError naming the folder when it does not exist."""
    folder = data_root(data_dir) / "multi30k"
    if not folder.is_dir():
        raise DataError(f"{folder}: no such folder; it should hold Multi30k's train, val and test2016 .de/.en files")
    return folder


def word_count(text: str) -> int:
    """The number of whitespace-separated words."""
    return len(text.split())


def filter_pairs(
    pairs: Sequence[Pair], max_len: int, length: Callable[[str], int] = word_count
) -> tuple[list[Pair], int]:
    """Keep the pairs whose source and target both measure 1..max_len units.

    Args:
        pairs: [(source, target)].
        max_len: the longest side kept, in units of `length`.
        length: measures one sentence (default: whitespace words; pass e.g. a subword count).
    Returns:
        (kept pairs in their order, number of pairs dropped).
    """
    if max_len < 1:
        raise ValueError(f"max_len must be >= 1, got {max_len}")
    kept = [(s, t) for s, t in pairs if 1 <= length(s) <= max_len and 1 <= length(t) <= max_len]
    return kept, len(pairs) - len(kept)
