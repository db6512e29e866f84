"""Copy, reverse and sort a sequence of symbols: the NTM algorithmic tasks as token problems.

Graves et al. 2014 ("Neural Turing Machines", section 4.1) train a network to write back a
sequence it has just read; reversing and sorting (their priority sort, section 4.5, without the
priorities) are the same frame with another rule. Here every example reads

    x_1 .. x_L  SEP  . .. .        (L blanks, t = 2L + 1)

and the answers at the L blank positions are x (copy), x reversed (reverse) or x sorted by
ascending token id (sort). Symbols are drawn uniformly with replacement.

Token layout: 0 PAD "_", 1 "SEP", 2 blank ".", 3 .. 3 + symbols - 1 the symbols "a", "b", ...
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from attnlab.spec import TaskSpec
from attnlab.tasks.base import TASKS, Batch, Task

SEP = 1  # separates the sequence to read from the blanks to answer at
BLANK = 2  # a position whose answer is to be written
FIRST_SYMBOL = 3  # id of the first symbol token


def letter_names(count: int, upper: bool = False) -> list[str]:
    """count printable names: "a".."z" (or "A".."Z"), then "s26", "s27", ... beyond 26."""
    first = ord("A") if upper else ord("a")
    prefix = "S" if upper else "s"
    return [chr(first + i) if i < 26 else f"{prefix}{i}" for i in range(count)]


@dataclass(frozen=True)
class SequenceConfig:
    length: int = 10  # L, symbols to read (and answers to write)
    symbols: int = 8  # distinct symbol tokens

    def __post_init__(self) -> None:
        for name in ("length", "symbols"):
            value = getattr(self, name)
            if value < 1:
                raise ValueError(f"{name} must be >= 1, got {value}")


class _SequenceTask(Task):
    """Shared frame of copy, reverse and sort: read L symbols, then write L answers."""

    Config = SequenceConfig
    config: SequenceConfig

    @property
    def spec(self) -> TaskSpec:
        length, vocab = self.config.length, FIRST_SYMBOL + self.config.symbols
        return TaskSpec(seq_len=2 * length + 1, answer_len=length, vocab_size=vocab, num_outputs=vocab)

    def answer(self, symbols: Tensor) -> Tensor:
        """symbols (b, L) token ids -> the answers (b, L) the task's rule asks for."""
        raise NotImplementedError

    def sample(self, batch_size: int, generator: torch.Generator) -> Batch:
        cfg = self.config
        x = torch.randint(
            FIRST_SYMBOL, FIRST_SYMBOL + cfg.symbols, (batch_size, cfg.length), generator=generator
        )  # (b, L)
        sep = torch.full((batch_size, 1), SEP)  # (b, 1)
        blanks = torch.full((batch_size, cfg.length), BLANK)  # (b, L)
        inputs = torch.cat([x, sep, blanks], dim=1)  # (b, 2L + 1)
        return Batch(inputs, self.answer(x))

    def token_names(self) -> list[str]:
        return ["_", "SEP", ".", *letter_names(self.config.symbols)]


@TASKS.register("copy")
class Copy(_SequenceTask):
    """Copy: write back the L symbols just read, in order (Graves et al. 2014)."""

    def answer(self, symbols: Tensor) -> Tensor:
        return symbols.clone()  # (b, L)


@TASKS.register("reverse")
class Reverse(_SequenceTask):
    """Reverse: write back the L symbols just read, last first."""

    def answer(self, symbols: Tensor) -> Tensor:
        return symbols.flip(-1)  # (b, L)


@TASKS.register("sort")
class Sort(_SequenceTask):
    """Sort: write back the L symbols just read in ascending order."""

    def answer(self, symbols: Tensor) -> Tensor:
        return symbols.sort(dim=-1).values  # (b, L)
