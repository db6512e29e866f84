"""The bAbI question-answering tasks (Weston et al. 2015, arXiv:1502.05698) as a flat token task.

Every question becomes one row of m*s + q token ids, the layout the memory families read back
(`TaskSpec.layout = (m, s, q)`):

    [ sentence 1 (s words) | ... | sentence m (s words) | question (q words) ]  ->  answer

The story keeps its most recent m statements, oldest first; a shorter story is left-padded with
all-PAD sentences, so the latest statement always sits in slot m. Words are right-padded inside
each sentence and inside the question. The answer is one class (a list answer such as
'apple,milk' is one token, as in the memory-network papers), so targets are (b, 1).

One vocabulary covers every selected task's train and test files, so `tasks="all"` trains one
model jointly on the 20 tasks. 10% of each task's training questions (a seeded draw) are the
validation split; the test split is the task's test file. Val and test rows are interleaved across
tasks (row i of task 1, row i of task 2, ...), so the first rows of either cover every task, and
`metrics` adds an `error_qa{N}` per task whenever it scores a prefix of the val or test split.

Settings: "en" (1k questions per task), "en-10k" (10k) read the files under
`{data_dir or ATTNLAB_DATA}/babi/tasks_1-20_v1-2/`; "generated" tells stories with
attnlab.data.babi_generator (tasks 1, 2, 3, 6, 7, 8), so runs and tests need no data. An en-10k
training file that is absent (the shared copy lacks qa3's) is replaced by the task's 1k training
file, which holds exactly its first 1000 questions; `fallbacks` names every such task, and its
test file is the same in both settings, so its test error is still reported. A file without a
question, or a training file with fewer than two, is a DataError naming the file.

Each split also keeps which memory slots hold a supporting fact (`support`, (r, m) bool, after the
story is cut to its m most recent sentences), so the attention of a trained memory network can be
scored against them: `support_attention` counts how often a hop's largest weight falls on one.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import torch
from torch import Tensor

from attnlab.data.babi import NUM_TASKS, BabiExample, Vocabulary, babi_dir, read_babi, task_file
from attnlab.data.babi_generator import GENERATED_TASKS, generate_babi
from attnlab.errors import ConfigError, DataError
from attnlab.spec import PAD, TaskSpec
from attnlab.tasks.base import TASKS, Batch, Task

SETTINGS = ("en", "en-10k", "generated")
VAL_FRACTION = 0.1  # of each task's training questions


@dataclass(frozen=True)
class BabiConfig:
    tasks: str = "1"  # comma-separated task numbers, or "all" (joint training on every task)
    setting: str = "generated"  # "en" (1k), "en-10k" (10k) from the files, or "generated" (no data)
    memory_size: int = 50  # m, the most recent story sentences kept per question
    data_dir: str = ""  # the folder holding babi/; empty = env ATTNLAB_DATA
    generated_stories: int = 200  # "generated": stories per task in train (test gets a fifth as many)
    generated_story_len: int = 10  # "generated": statements per story
    seed: int = 0  # seeds the generated stories and the validation draw

    def __post_init__(self) -> None:
        if self.setting not in SETTINGS:
            raise ValueError(f"setting must be one of {', '.join(SETTINGS)}, got {self.setting!r}")
        self.task_numbers()  # raises on a malformed list
        for name, low in (("memory_size", 1), ("generated_stories", 5), ("generated_story_len", 2)):
            if getattr(self, name) < low:
                raise ValueError(f"{name} must be >= {low}, got {getattr(self, name)}")

    def task_numbers(self) -> tuple[int, ...]:
        """The selected task numbers, sorted; "all" is every task of the setting."""
        allowed = GENERATED_TASKS if self.setting == "generated" else tuple(range(1, NUM_TASKS + 1))
        if self.tasks.strip() == "all":
            return allowed
        try:
            numbers = sorted({int(part) for part in self.tasks.split(",")})
        except ValueError:
            raise ValueError(f"tasks must be comma-separated task numbers or 'all', got {self.tasks!r}") from None
        bad = [n for n in numbers if n not in allowed]
        if bad:
            raise ValueError(f"tasks must lie in {allowed} for setting {self.setting!r}, got {bad}")
        return tuple(numbers)


@dataclass
class _Split:
    """Encoded rows of one split; kept as int16 so that 10k joint training fits in memory."""

    inputs: Tensor  # (r, m*s + q) int16 token ids
    targets: Tensor  # (r, 1) int16 answer ids
    task_ids: Tensor  # (r,) long, the bAbI task number of each row
    support: Tensor  # (r, m) bool, True at the slots that hold a supporting fact of the question

    def batch(self, index: slice | Tensor) -> Batch:
        return Batch(self.inputs[index].long(), self.targets[index].long())


def _interleave(per_task: dict[int, list[BabiExample]]) -> tuple[list[BabiExample], list[int]]:
    """Examples ordered round-robin over tasks (row i of each task, then row i + 1), with task ids."""
    rows = [(i, n, ex) for n, examples in per_task.items() for i, ex in enumerate(examples)]
    rows.sort(key=lambda row: (row[0], row[1]))
    return [ex for _, _, ex in rows], [n for _, n, _ in rows]


@TASKS.register("babi")
class Babi(Task):
    """bAbI question answering: a story of sentences and a question, laid out flat (m, s, q)."""

    Config = BabiConfig
    config: BabiConfig

    def __init__(self, config: BabiConfig | None = None) -> None:
        super().__init__(config)
        self._data: dict | None = None  # vocabulary, sizes and encoded splits, built on first use
        self.fallbacks: list[int] = []  # en-10k tasks trained on their 1k file, theirs being absent

    # -- data ---------------------------------------------------------------------------------

    def _read(self) -> dict[int, dict[str, list[BabiExample]]]:
        """task -> {"train", "test"} -> examples, from the files or the generator."""
        cfg = self.config
        out = {}
        self.fallbacks = []
        for n in cfg.task_numbers():
            if cfg.setting == "generated":
                train = generate_babi(n, cfg.generated_stories, 2 * cfg.seed, cfg.generated_story_len)
                test = generate_babi(n, cfg.generated_stories // 5, 2 * cfg.seed + 1, cfg.generated_story_len)
                out[n] = {"train": train, "test": test}
                continue
            try:
                out[n] = {split: self._load(n, split) for split in ("train", "test")}
            except DataError:
                raise  # a file that is there but unusable: its message names the file
            except (FileNotFoundError, ValueError) as err:
                where = self._folder()
                raise ConfigError(f"babi: task {n} ({cfg.setting}) not readable in {where}: {err}") from None
        return out

    def _load(self, n: int, split: str) -> list[BabiExample]:
        """One task's file; an absent en-10k training file falls back to the 1k one (see `fallbacks`).

        Raises:
            DataError: the file holds no question or is malformed, or a training file holds fewer
                than two questions (one at least is held out for validation, one at least trains).
        """
        folder = self.config.data_dir or None
        try:
            path = task_file(n, split, self.config.setting, folder)
        except FileNotFoundError:
            if self.config.setting != "en-10k" or split != "train":
                raise
            self.fallbacks.append(n)
            path = task_file(n, split, "en", folder)
        examples = read_babi(path)
        if split == "train" and len(examples) < 2:
            raise DataError(
                f"{path}: {len(examples)} question; a training file needs at least 2 (a share is held out for validation)"
            )
        return examples

    def _folder(self) -> str:
        try:
            return str(babi_dir(self.config.data_dir or None, self.config.setting))
        except ValueError:
            return "<no data folder: set task.data_dir or ATTNLAB_DATA>"

    def data(self) -> dict:
        """The vocabulary, the layout (m, s, q) and the encoded "train", "val", "test" splits (cached)."""
        if self._data is not None:
            return self._data
        raw = self._read()
        vocab = Vocabulary(ex for parts in raw.values() for part in parts.values() for ex in part)
        m = self.config.memory_size
        everything = [ex for parts in raw.values() for part in parts.values() for ex in part]
        s = max((len(sentence) for ex in everything for sentence in ex.story[-m:]), default=1)
        q = max(len(ex.question) for ex in everything)
        train, val = {}, {}
        for n, parts in raw.items():
            order = list(range(len(parts["train"])))
            random.Random(f"babi-val-{self.config.seed}-{n}").shuffle(order)
            held = max(1, round(VAL_FRACTION * len(order)))
            val[n] = [parts["train"][i] for i in sorted(order[:held])]
            train[n] = [parts["train"][i] for i in sorted(order[held:])]
        test = {n: parts["test"] for n, parts in raw.items()}
        layout = (m, s, q)
        named = {"train": train, "val": val, "test": test}
        splits = {name: self._encode(rows, vocab, layout) for name, rows in named.items()}
        self._data = {"vocab": vocab, "layout": layout, **splits}
        return self._data

    @staticmethod
    def _encode(per_task: dict[int, list[BabiExample]], vocab: Vocabulary, layout: tuple[int, int, int]) -> _Split:
        """Examples -> flat rows: m sentences of s words (left-padded with empty sentences), q question words."""
        m, s, q = layout
        examples, task_ids = _interleave(per_task)
        cache: dict[tuple[str, ...], list[int]] = {}

        def words(tokens: tuple[str, ...], width: int) -> list[int]:
            if tokens not in cache:
                cache[tokens] = vocab.encode(tokens)
            return cache[tokens] + [PAD] * (width - len(tokens))

        rows = []
        support = torch.zeros(len(examples), m, dtype=torch.bool)  # (r, m)
        for r, ex in enumerate(examples):
            kept = ex.story[-m:]
            row = [PAD] * (s * (m - len(kept)))
            for sentence in kept:
                row += words(sentence, s)
            rows.append(row + words(ex.question, q))
            shift = m - len(ex.story)  # story index i sits in slot i + shift; dropped when negative
            support[r, [i + shift for i in ex.supporting if i + shift >= 0]] = True
        inputs = torch.tensor(rows, dtype=torch.int16).view(len(rows), m * s + q)  # (r, m*s + q)
        targets = torch.tensor([[vocab.ids[ex.answer_token]] for ex in examples], dtype=torch.int16)  # (r, 1)
        return _Split(inputs, targets, torch.tensor(task_ids, dtype=torch.long), support)

    # -- the Task interface -------------------------------------------------------------------

    @property
    def spec(self) -> TaskSpec:
        data = self.data()
        m, s, q = data["layout"]
        v = len(data["vocab"])
        return TaskSpec(seq_len=m * s + q, answer_len=1, vocab_size=v, num_outputs=v, layout=(m, s, q))

    def sample(self, batch_size: int, generator: torch.Generator) -> Batch:
        """batch_size training rows drawn uniformly with replacement."""
        train = self.data()["train"]
        index = torch.randint(0, len(train.inputs), (batch_size,), generator=generator)  # (b,)
        return train.batch(index)

    def eval_set(self, size: int, split: str = "val") -> Batch:
        """The first size rows (at most the split's size) of the fixed val or test split (copies)."""
        if split not in ("val", "test"):
            raise ValueError(f"split must be 'val' or 'test', got {split!r}")
        return self.data()[split].batch(slice(0, size))  # .long() copies: the cache stays intact

    def task_ids(self, split: str) -> Tensor:
        """(r,) the bAbI task number of every row of the "train", "val" or "test" split."""
        return self.data()[split].task_ids.clone()

    def support(self, split: str) -> Tensor:
        """(r, m) bool: the memory slots of every row of split that hold a supporting fact."""
        return self.data()[split].support.clone()

    def _split_of(self, batch: Batch) -> str | None:
        """ "val" or "test" when batch holds the first rows of that split, else None."""
        for split in ("val", "test"):
            stored = self.data()[split]
            b = len(batch)
            fits = b <= len(stored.inputs) and batch.inputs.shape[1:] == stored.inputs.shape[1:]
            if fits and torch.equal(batch.inputs.cpu(), stored.inputs[:b].long()):
                return split
        return None

    def per_task_accuracy(self, logits: Tensor, batch: Batch, split: str = "test") -> dict[int, float]:
        """Accuracy per bAbI task of logits (b, 1, o) on the first b rows of split."""
        ids = self.data()[split].task_ids[: len(batch)].to(logits.device)  # (b,)
        right = (logits.argmax(-1) == batch.targets).all(-1)  # (b,)
        return {int(n): right[ids == n].float().mean().item() for n in ids.unique()}

    def metrics(self, logits: Tensor, batch: Batch) -> dict[str, float]:
        """Accuracy, plus error_qa{N} (1 - accuracy) per task when batch is a prefix of val or test."""
        result = super().metrics(logits, batch)
        split = self._split_of(batch)
        if split is not None:
            for n, accuracy in self.per_task_accuracy(logits, batch, split).items():
                result[f"error_qa{n}"] = 1.0 - accuracy
        return result

    @staticmethod
    def support_attention(weights: Tensor, support: Tensor, task_ids: Tensor) -> dict[int, dict[str, float]]:
        """How often the memory hops put their largest weight on a supporting fact, per task.

        Args:
            weights: (b, K, m) each hop's weights over the memory slots (`attnlab.memory.hop_weights`).
            support: (b, m) bool, the supporting slots (`support(split)`); rows with none are left out.
            task_ids: (b,) the task of each row.
        Returns:
            task -> {"hop1".."hopK": the share of questions whose hop-k argmax slot supports the
            answer, "any_hop": the share where some hop's does, "questions": how many were counted}.
        """
        top = weights.argmax(-1)  # (b, K)
        hit = support.gather(1, top)  # (b, K)
        counted = support.any(-1)  # (b,)
        out = {}
        for n in task_ids.unique().tolist():
            rows = (task_ids == n) & counted  # (b,)
            if not rows.any():
                continue
            shares = hit[rows].float().mean(0)  # (K,)
            out[n] = {f"hop{k + 1}": float(v) for k, v in enumerate(shares)}
            out[n]["any_hop"] = float(hit[rows].any(-1).float().mean())
            out[n]["questions"] = int(rows.sum())
        return out

    def token_names(self) -> list[str]:
        return ["_", *self.data()["vocab"].words[1:]]

    def render(self, batch: Batch, index: int = 0, logits: Tensor | None = None) -> str:
        """The story's sentences, the question, the answer and, given logits (b, 1, o), the prediction."""
        names = self.token_names()
        m, s, _ = self.data()["layout"]
        row = batch.inputs[index].tolist()

        def text(ids: list[int]) -> str:
            return " ".join(names[i] for i in ids if i != PAD)

        sentences = [text(row[i * s : (i + 1) * s]) for i in range(m)]
        lines = [f"{k}. {line}" for k, line in enumerate((x for x in sentences if x), start=1)]
        lines += [f"question: {text(row[m * s :])}", f"answer: {names[int(batch.targets[index, 0])]}"]
        if logits is not None:
            lines.append(f"predicted: {names[int(logits[index, 0].argmax())]}")
        return "\n".join(lines)
