"""A single long-range dependency whose distance is a parameter.

One class token c sits at a random position p in [0, jitter] of a sequence of random noise
tokens; the last of the t = distance + jitter + 1 positions holds the query "?", and the answer
is c. The signal is thus between distance and distance + jitter steps before the query, and
nothing else in the sequence carries information about it (chance is 1 / classes).

What it separates, as distance grows:
- a CNN whose receptive field is smaller than `distance` cannot see the signal from the query
  position at all (it stays at chance however long it trains);
- a recurrent net must carry c in its state across the whole gap of noise, the vanishing-gradient
  setting of Hochreiter & Schmidhuber 1997, whose long-time-lag experiments likewise put the
  signal at the start of a noise sequence and ask for it at the end;
- self-attention reaches it in one step: the query compares itself with every position, and the
  path between the two positions has length 1 whatever the distance (Vaswani et al. 2017, 4).

Token layout: 0 PAD "_", 1 query "?", noise 2 .. 2+noise-1 ("a", "b", ...), then the class
tokens ("A", "B", ...).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from attnlab.spec import TaskSpec
from attnlab.tasks.base import TASKS, Batch, Task
from attnlab.tasks.sequences import letter_names

QUERY = 1  # the token at the last position that asks for the class
FIRST_NOISE = 2  # id of the first noise token


@dataclass(frozen=True)
class LongRangeConfig:
    distance: int = 32  # smallest gap between the class token and the query
    jitter: int = 8  # the class token sits at a position in [0, jitter], so the gap is up to distance + jitter
    classes: int = 4  # distinct class tokens (the answers)
    noise: int = 8  # distinct noise tokens that fill every other position

    def __post_init__(self) -> None:
        for name, low in (("distance", 1), ("jitter", 0), ("classes", 1), ("noise", 1)):
            value = getattr(self, name)
            if value < low:
                raise ValueError(f"{name} must be >= {low}, got {value}")


@TASKS.register("long_range")
class LongRange(Task):
    """Long range: recall the class token seen distance to distance + jitter steps before the query."""

    Config = LongRangeConfig
    config: LongRangeConfig

    @property
    def first_class(self) -> int:
        return FIRST_NOISE + self.config.noise

    @property
    def spec(self) -> TaskSpec:
        cfg = self.config
        vocab = self.first_class + cfg.classes
        return TaskSpec(seq_len=cfg.distance + cfg.jitter + 1, answer_len=1, vocab_size=vocab, num_outputs=vocab)

    def sample(self, batch_size: int, generator: torch.Generator) -> Batch:
        cfg, t = self.config, self.spec.seq_len
        inputs = torch.randint(FIRST_NOISE, self.first_class, (batch_size, t), generator=generator)  # (b, t)
        label = torch.randint(
            self.first_class, self.first_class + cfg.classes, (batch_size, 1), generator=generator
        )  # (b, 1)
        where = torch.randint(0, cfg.jitter + 1, (batch_size, 1), generator=generator)  # (b, 1)
        inputs.scatter_(1, where, label)
        inputs[:, -1] = QUERY
        return Batch(inputs, label)

    def token_names(self) -> list[str]:
        return ["_", "?", *letter_names(self.config.noise), *letter_names(self.config.classes, upper=True)]
