"""Reading the bAbI question-answering tasks (Weston et al. 2015, arXiv:1502.05698), format v1.2.

Each file is a run of stories. A line is `ID text`; IDs count from 1 inside a story, so an ID of 1
starts a new story. A statement line holds one sentence; a question line holds
`question<TAB>answer<TAB>supporting IDs`, where the answer may be a comma-separated list (task 8,
lists/sets; task 19, path finding) and the supporting IDs name earlier statement lines.

Every question becomes one `BabiExample`: the statements of its story up to that point (the memory
x_i of a memory network), the question q, the answer a, and which statements support it (given as
indices into `story`, not file IDs). Text is lowercased and punctuation is split off the words and
dropped: the record's structure already says which part is a question.

The data folder is the one that holds `babi/` (`--data-dir`, or env ATTNLAB_DATA); the files sit in
`babi/tasks_1-20_v1-2/{en,en-10k}/qa{N}_{name}_{train,test}.txt`.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from attnlab.errors import DataError

SETS = ("en", "en-10k")  # the 1k and the 10k training settings
SPLITS = ("train", "test")
NUM_TASKS = 20
_WORD = re.compile(r"[a-z0-9]+")
_LINE = re.compile(r"(\d+) (.*)")


@dataclass(frozen=True)
class BabiExample:
    """One question with the story it is asked about."""

    story: tuple[tuple[str, ...], ...]  # the story's statements so far, oldest first, each tokenised
    question: tuple[str, ...]  # the question's words
    answer: tuple[str, ...]  # the answer's words (more than one for lists and paths)
    supporting: tuple[int, ...]  # indices into `story` of the statements that support the answer

    @property
    def answer_token(self) -> str:
        """The whole answer as one output class: words joined by commas, as the files write them."""
        return ",".join(self.answer)


def tokenize(text: str) -> tuple[str, ...]:
    """Lowercased words with punctuation split off and dropped: 'Mary went.' -> ('mary', 'went')."""
    return tuple(_WORD.findall(text.lower()))


def parse_babi(lines: Iterable[str], source: str = "<lines>") -> list[BabiExample]:
    """Parse bAbI v1.2 lines into examples.

    Args:
        lines: the file's lines (with or without newlines).
        source: the name used in error messages (the file's path).
    Returns:
        One BabiExample per question line, in file order.
    Raises:
        DataError: `source:line: ...` naming what was expected, for any malformed line.
    """
    examples: list[BabiExample] = []
    story: list[tuple[str, ...]] = []
    index_of: dict[int, int] = {}  # statement line ID -> index into story
    last_id = 0
    for number, raw in enumerate(lines, start=1):
        line = raw.rstrip("\r\n")
        if not line.strip():
            continue
        where = f"{source}:{number}"
        match = _LINE.fullmatch(line)
        if match is None:
            raise DataError(f"{where}: expected 'ID text' with a positive integer ID, got {line[:60]!r}")
        line_id, text = int(match.group(1)), match.group(2)
        if line_id == 1:
            story, index_of = [], {}
        elif line_id != last_id + 1:
            raise DataError(f"{where}: expected ID 1 (new story) or {last_id + 1}, got {line_id}")
        last_id = line_id
        if "\t" not in text:
            words = tokenize(text)
            if not words:
                raise DataError(f"{where}: expected a statement with at least one word, got {text!r}")
            index_of[line_id] = len(story)
            story.append(words)
            continue
        examples.append(_question(text, story, index_of, where))
    return examples


def _question(text: str, story: list, index_of: dict[int, int], where: str) -> BabiExample:
    fields = text.split("\t")
    if len(fields) != 3:
        raise DataError(f"{where}: expected 'question<TAB>answer<TAB>supporting IDs', got {len(fields)} fields")
    question, answer = tokenize(fields[0]), tuple(w.strip().lower() for w in fields[1].split(","))
    if not question:
        raise DataError(f"{where}: expected a question with at least one word, got {fields[0]!r}")
    if not all(_WORD.fullmatch(w) for w in answer):
        raise DataError(f"{where}: expected an answer of comma-separated words, got {fields[1]!r}")
    try:
        ids = [int(s) for s in fields[2].split()]
    except ValueError:
        raise DataError(f"{where}: expected space-separated supporting IDs, got {fields[2]!r}") from None
    missing = [i for i in ids if i not in index_of]
    if missing:
        raise DataError(f"{where}: expected supporting IDs of earlier statements in this story, got {missing}")
    return BabiExample(tuple(story), question, answer, tuple(index_of[i] for i in ids))


def read_babi(path: str | Path) -> list[BabiExample]:
    """Every question of one bAbI file, parsed with `parse_babi` (errors name the file and line).

    Raises:
        FileNotFoundError: no such file.
        DataError: a malformed line, a file that cannot be read as UTF-8 text, or one without a
            single question (empty, or statements only).
    """
    path = Path(path)
    try:
        with path.open(encoding="utf-8") as f:
            examples = parse_babi(f, source=str(path))
    except FileNotFoundError:
        raise
    except (OSError, UnicodeDecodeError) as err:
        reason = err.strerror if isinstance(err, OSError) and err.strerror else str(err)
        raise DataError(f"{path}: cannot read the file ({reason})") from None
    if not examples:
        raise DataError(f"{path}: no questions (expected lines 'ID question<TAB>answer<TAB>supporting IDs')")
    return examples


def data_root(data_dir: str | Path | None = None) -> Path:
    """The data folder: `data_dir`, else env ATTNLAB_DATA; a ValueError when neither is given."""
    root = data_dir if data_dir is not None else os.environ.get("ATTNLAB_DATA")
    if root is None:
        raise ValueError("data_dir: no data folder given; pass --data-dir or set ATTNLAB_DATA")
    return Path(root)


def babi_dir(data_dir: str | Path | None = None, setting: str = "en") -> Path:
    """The folder of one setting (`en` or `en-10k`) under the data folder."""
    if setting not in SETS:
        raise ValueError(f"setting must be one of {SETS}, got {setting!r}")
    return data_root(data_dir) / "babi" / "tasks_1-20_v1-2" / setting


def task_file(task: int, split: str, setting: str = "en", data_dir: str | Path | None = None) -> Path:
    """The path of one task's train or test file.

    Raises:
        ValueError: task outside 1-20 or an unknown split or setting.
        FileNotFoundError: the file is absent; the message names the path searched.
    """
    if not isinstance(task, int) or not 1 <= task <= NUM_TASKS:
        raise ValueError(f"task must be an integer in 1..{NUM_TASKS}, got {task!r}")
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    folder = babi_dir(data_dir, setting)
    pattern = f"qa{task}_*_{split}.txt"
    found = sorted(folder.glob(pattern))
    if not found:
        raise FileNotFoundError(f"bAbI task {task} {split} ({setting}): no file {folder / pattern}")
    return found[0]


def load_task(task: int, split: str, setting: str = "en", data_dir: str | Path | None = None) -> list[BabiExample]:
    """Every question of one task's train or test file."""
    return read_babi(task_file(task, split, setting, data_dir))


class Vocabulary:
    """Word ids built from examples: 0 is padding, the rest are the data's words in sorted order.

    Answers enter as whole answer tokens (`BabiExample.answer_token`), so a list answer such as
    'apple,milk' is one output class, as in the memory-network papers.
    """

    PAD = 0

    def __init__(self, examples: Iterable[BabiExample]):
        words: set[str] = set()
        for ex in examples:
            words.update(w for sentence in ex.story for w in sentence)
            words.update(ex.question)
            words.add(ex.answer_token)
        self.words: tuple[str, ...] = ("<pad>", *sorted(words))
        self.ids: dict[str, int] = {w: i for i, w in enumerate(self.words)}

    def __len__(self) -> int:
        return len(self.words)

    def __contains__(self, word: str) -> bool:
        return word in self.ids

    def encode(self, words: Iterable[str]) -> list[int]:
        """Ids of words; a KeyError names the first word outside the vocabulary."""
        out = []
        for w in words:
            if w not in self.ids:
                raise KeyError(f"word {w!r} is not in the vocabulary ({len(self)} words)")
            out.append(self.ids[w])
        return out

    def decode(self, ids: Iterable[int]) -> list[str]:
        return [self.words[i] for i in ids if i != self.PAD]


@dataclass
class BabiTensors:
    """Examples as padded id tensors, the inputs of the memory networks."""

    story: Tensor  # (b, m, s) long; the last m statements, oldest first, right-padded with PAD
    story_mask: Tensor  # (b, m) bool, True where a statement is present
    question: Tensor  # (b, q) long, right-padded with PAD
    answer: Tensor  # (b,) long, the id of the answer token


def to_tensors(
    examples: list[BabiExample], vocab: Vocabulary, memory_size: int, sentence_len: int | None = None
) -> BabiTensors:
    """Pad examples into tensors, keeping the most recent `memory_size` statements of each story.

    Args:
        examples: the examples (at least one).
        vocab: word ids.
        memory_size: m, statements kept per story (the most recent ones).
        sentence_len: s, words per statement; default the longest kept statement.
    Returns:
        BabiTensors with story (b, m, s), story_mask (b, m), question (b, q), answer (b,).
    """
    if memory_size < 1:
        raise ValueError(f"memory_size must be >= 1, got {memory_size}")
    stories = [ex.story[-memory_size:] for ex in examples]
    longest = max((len(s) for story in stories for s in story), default=1)
    s_len = longest if sentence_len is None else sentence_len
    if s_len < longest:
        raise ValueError(f"sentence_len must be >= the longest kept statement ({longest}), got {s_len}")
    q_len = max(len(ex.question) for ex in examples)
    b = len(examples)
    story = torch.zeros(b, memory_size, s_len, dtype=torch.long)  # (b, m, s)
    mask = torch.zeros(b, memory_size, dtype=torch.bool)  # (b, m)
    question = torch.zeros(b, q_len, dtype=torch.long)  # (b, q)
    for row, (ex, kept) in enumerate(zip(examples, stories)):
        for slot, sentence in enumerate(kept):
            story[row, slot, : len(sentence)] = torch.tensor(vocab.encode(sentence))
            mask[row, slot] = True
        question[row, : len(ex.question)] = torch.tensor(vocab.encode(ex.question))
    answer = torch.tensor([vocab.ids[ex.answer_token] for ex in examples])  # (b,)
    return BabiTensors(story, mask, question, answer)
