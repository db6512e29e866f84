"""ListOps with the generator rules of the Long Range Arena (Tay et al. 2020; Nangia & Bowman 2018).

An example is a nested prefix expression over the digits 0-9, such as

    [MAX 2 9 [MIN 4 7 ] 0 ]   ->   9

and the answer is its value (one of ten classes). The rules follow LRA's generator
(google-research/long-range-arena, `lra_benchmarks/data/listops.py`):

- operators MIN, MAX, MED (the integer part of numpy's median, so the lower-rounded mean of the
  two middle values for an even count) and SM (sum mod 10), written "[MIN", "[MAX", "[MED", "[SM";
  every operator's arguments end with "]";
- a node at depth < max_depth (the root has depth 1) is a leaf digit with probability 0.75 and
  otherwise an operator with randint(2, max_args) arguments; nodes at max_depth are leaves;
- a tree's length counts operators, digits and "]" (an operator node is 2 + its arguments);
  only trees with min_length < length < max_length are kept, duplicates are removed, and the
  first train_size trees are the training split, the next val_size validation, the rest test.

The random calls are made in LRA's order (a draw in [0, 1), then the digit, or the argument
count, the arguments and last the operator), so a `random.Random` in the same state grows the
same trees. Two differences, both deliberate:

- Tokens. LRA writes each tree through its binary-tuple form, which wraps every operator
  application in parentheses: "( ( ( [MAX 2 ) 9 ) ] )" for [MAX 2 9 ]. `lra_string` writes that
  form; the tokens are its whitespace-separated items without "(" and ")", so an example has
  exactly `length` tokens. (LRA's own input pipeline split on non-alphanumerics and so lost
  "[" and "]" too, which its maintainers called a bug: LRA GitHub issues #6 and #14.)
- Order. LRA collects trees in a Python set, whose order changes with the hash seed; here the
  first-generated order is kept, so a data_seed gives the same splits on every machine.

Presets: "full" is LRA's dataset (max_depth 10, max_args 10, 500 < length < 2000,
96000/2000/2000; hours of CPU to generate and to train on), "mini" a CPU-sized version.
Reported accuracies: ../shared/REFERENCES.md, "Long Range Arena ListOps".
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Literal, TypeAlias

import torch

from attnlab.spec import PAD, TaskSpec
from attnlab.tasks.base import TASKS, Batch, Task

MIN, MAX, MED, SUM_MOD = "[MIN", "[MAX", "[MED", "[SM"
OPERATORS = (MIN, MAX, MED, SUM_MOD)  # in LRA's order: random choices index into it
END = "]"
DIGITS = range(10)
LEAF_PROBABILITY = 0.75  # LRA draws r in [0, 1) and makes a leaf when r > 0.25

# token ids: 0 PAD, the digits at 1..10 (so a value v is token v + 1), the operators, "]"
VOCAB = ["_"] + [str(d) for d in DIGITS] + list(OPERATORS) + [END]
TOKEN_ID = {name: i for i, name in enumerate(VOCAB)}

Tree: TypeAlias = int | tuple[str, tuple["Tree", ...]]  # a digit, or (operator, arguments)

PRESETS = {
    "full": {
        "max_depth": 10,
        "max_args": 10,
        "min_length": 500,
        "max_length": 2000,
        "train_size": 96000,
        "val_size": 2000,
        "test_size": 2000,
    },
    "mini": {
        "max_depth": 6,
        "max_args": 5,
        "min_length": 20,
        "max_length": 128,
        "train_size": 20000,
        "val_size": 1000,
        "test_size": 1000,
    },
}


def median(values: list[int]) -> int:
    """int(numpy.median(values)) for digits: the middle value, or the floor of the two middles' mean."""
    ordered = sorted(values)
    middle = len(ordered) // 2
    if len(ordered) % 2:
        return ordered[middle]
    return (ordered[middle - 1] + ordered[middle]) // 2  # values are >= 0, so // truncates like int()


def evaluate(tree: Tree) -> int:
    """The value of a tree: a digit 0-9."""
    if isinstance(tree, int):
        return tree
    operator, arguments = tree
    values = [evaluate(a) for a in arguments]
    if operator == MIN:
        return min(values)
    if operator == MAX:
        return max(values)
    if operator == MED:
        return median(values)
    if operator == SUM_MOD:
        return sum(values) % 10
    raise ValueError(f"unknown operator {operator!r}")


def generate_tree(rng: random.Random, max_depth: int, max_args: int, depth: int = 1) -> tuple[Tree, int]:
    """A random tree by LRA's rules and its length in tokens (operators, digits and "]")."""
    draw = rng.random() if depth < max_depth else 1.0
    if draw > 1.0 - LEAF_PROBABILITY:
        return rng.choice(DIGITS), 1
    count = rng.randint(2, max_args)
    arguments, length = [], 2
    for _ in range(count):
        argument, size = generate_tree(rng, max_depth, max_args, depth + 1)
        arguments.append(argument)
        length += size
    return (rng.choice(OPERATORS), tuple(arguments)), length


def tokens(tree: Tree) -> list[str]:
    """The prefix form: "[MAX", its arguments' tokens, "]"."""
    if isinstance(tree, int):
        return [str(tree)]
    operator, arguments = tree
    out = [operator]
    for argument in arguments:
        out.extend(tokens(argument))
    out.append(END)
    return out


def lra_string(tree: Tree) -> str:
    """The text LRA writes to its .tsv files, parentheses of its binary-tuple form included."""
    if isinstance(tree, int):
        return str(tree)
    operator, arguments = tree
    text = f"( {operator} {lra_string(arguments[0])} )"
    for argument in arguments[1:]:
        text = f"( {text} {lra_string(argument)} )"
    return f"( {text} {END} )"


def tokenize(text: str) -> list[str]:
    """Tokens of a written expression (LRA's form or the plain prefix form): parentheses dropped."""
    return [item for item in text.split() if item not in ("(", ")")]


def parse(text: str) -> Tree:
    """The tree of a written expression, e.g. "[MAX 2 9 [MIN 4 7 ] 0 ]"."""
    items = tokenize(text)
    stack: list[tuple[str, list[Tree]]] = []
    root: list[Tree] = []
    for item in items:
        if item in OPERATORS:
            stack.append((item, []))
        elif item == END:
            if not stack:
                raise ValueError(f"unmatched {END!r} in {text!r}")
            operator, arguments = stack.pop()
            (stack[-1][1] if stack else root).append((operator, tuple(arguments)))
        elif item.isdigit() and len(item) == 1:
            (stack[-1][1] if stack else root).append(int(item))
        else:
            raise ValueError(f"unknown token {item!r} in {text!r}")
    if stack or len(root) != 1:
        raise ValueError(f"not one complete expression: {text!r}")
    return root[0]


def _longest(max_depth: int, max_args: int) -> int:
    """The length of the largest tree the rules allow."""
    length = 1
    for _ in range(max_depth - 1):
        length = 2 + max_args * length
    return length


@dataclass(frozen=True)
class ListOpsConfig:
    preset: Literal["mini", "full"] = "mini"  # where the fields left None take their values
    max_depth: int | None = None  # depth at which every node is a leaf (the root has depth 1)
    max_args: int | None = None  # most arguments of one operator (at least 2)
    min_length: int | None = None  # keep trees longer than this (in tokens)
    max_length: int | None = None  # keep trees shorter than this; seq_len = max_length - 1
    train_size: int | None = None  # distinct trees in the training split
    val_size: int | None = None  # distinct trees in the validation split
    test_size: int | None = None  # distinct trees in the test split
    data_seed: int = 0  # seed of the generator the whole dataset is drawn from

    def __post_init__(self) -> None:
        if self.preset not in PRESETS:
            raise ValueError(f"preset must be one of {', '.join(sorted(PRESETS))}, got {self.preset!r}")
        s = self.resolved()
        lows = {"max_depth": 1, "max_args": 2, "min_length": 0, "train_size": 1, "val_size": 1, "test_size": 1}
        for name, low in lows.items():
            if s[name] < low:
                raise ValueError(f"{name} must be >= {low}, got {s[name]}")
        if s["max_length"] < s["min_length"] + 2:
            raise ValueError(f"max_length must be >= min_length + 2 ({s['min_length'] + 2}), got {s['max_length']}")
        longest = _longest(s["max_depth"], s["max_args"])
        if s["min_length"] >= longest:
            raise ValueError(f"min_length must be < {longest}, the longest tree of this depth and arity")

    def resolved(self) -> dict[str, int]:
        """Every numeric field, those left None taken from the preset."""
        fields = dict(PRESETS[self.preset], data_seed=self.data_seed)
        for name in fields:
            if getattr(self, name) is not None:
                fields[name] = getattr(self, name)
        return fields


def generate(config: ListOpsConfig, patience: int = 200_000) -> dict[str, list[tuple[list[str], int]]]:
    """The train/val/test splits of (tokens, value) pairs, drawn with random.Random(data_seed).

    Raises RuntimeError when patience draws in a row add no new tree (the rules and the length
    window cannot give that many distinct trees) instead of looping forever as LRA would.
    """
    s = config.resolved()
    total = s["train_size"] + s["val_size"] + s["test_size"]
    rng = random.Random(s["data_seed"])
    kept: dict[tuple[str, ...], int] = {}  # insertion-ordered, so the splits are deterministic
    idle = 0
    while len(kept) < total:
        tree, length = generate_tree(rng, s["max_depth"], s["max_args"])
        key = tuple(tokens(tree)) if s["min_length"] < length < s["max_length"] else None
        if key is None or key in kept:
            idle += 1
            if idle >= patience:
                raise RuntimeError(
                    f"listops: no new tree in {patience} draws after {len(kept)} of {total}; "
                    "widen min_length/max_length or lower the split sizes"
                )
            continue
        kept[key] = evaluate(tree)
        idle = 0
    rows = [(list(k), v) for k, v in kept.items()]
    train_end = s["train_size"]
    val_end = train_end + s["val_size"]
    return {"train": rows[:train_end], "val": rows[train_end:val_end], "test": rows[val_end:]}


def encode(rows: list[tuple[list[str], int]], seq_len: int) -> Batch:
    """(tokens, value) pairs -> inputs (b, seq_len) left-padded with PAD, targets (b, 1) digit tokens."""
    ids = [[PAD] * (seq_len - len(t)) + [TOKEN_ID[x] for x in t] for t, _ in rows]
    answers = [[TOKEN_ID[str(v)]] for _, v in rows]
    inputs = torch.tensor(ids, dtype=torch.long)  # (b, seq_len)
    targets = torch.tensor(answers, dtype=torch.long)  # (b, 1)
    return Batch(inputs, targets)


@TASKS.register("listops")
class ListOps(Task):
    """ListOps (Long Range Arena): the value 0-9 of a nested MIN/MAX/MED/SM expression."""

    Config = ListOpsConfig
    config: ListOpsConfig

    def __init__(self, config: ListOpsConfig | None = None) -> None:
        super().__init__(config)
        self._splits: dict[str, Batch] | None = None  # built on first use

    @property
    def spec(self) -> TaskSpec:
        seq_len = self.config.resolved()["max_length"] - 1
        return TaskSpec(seq_len=seq_len, answer_len=1, vocab_size=len(VOCAB), num_outputs=len(VOCAB))

    def splits(self) -> dict[str, Batch]:
        """The dataset's "train", "val" and "test" splits, generated once and cached."""
        if self._splits is None:
            seq_len = self.spec.seq_len
            self._splits = {name: encode(rows, seq_len) for name, rows in generate(self.config).items()}
        return self._splits

    def sample(self, batch_size: int, generator: torch.Generator) -> Batch:
        """batch_size training rows drawn uniformly with replacement."""
        train = self.splits()["train"]
        index = torch.randint(0, len(train), (batch_size,), generator=generator)  # (b,)
        return train.rows(index)

    def eval_set(self, size: int, split: str = "val") -> Batch:
        """The first size rows (at most the split's size) of the fixed val or test split."""
        if split not in ("val", "test"):
            raise ValueError(f"split must be 'val' or 'test', got {split!r}")
        data = self.splits()[split]
        size = min(size, len(data))
        return Batch(data.inputs[:size].clone(), data.targets[:size].clone())  # a copy: the cache stays intact

    def token_names(self) -> list[str]:
        return list(VOCAB)
