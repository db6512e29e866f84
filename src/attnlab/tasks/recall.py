"""Probe tasks that need content-based lookup: associative recall, induction heads, selective copying.

- Associative recall (Graves et al. 2014, section 4.3; Ba et al. 2016 "fast weights"): read N
  key-value pairs, then a query key; answer its value. Attention does it in one step by matching
  the query to the keys; an RNN must store every pair in its state.
- Multi-query associative recall, MQAR (Arora et al. 2023, "Zoology", section 3): the same with
  m > 1 keys asked per sequence, many pairs (e.g. 32 pairs of 64 keys and 64 values) and long
  sequences (`seq_len`, e.g. 128: a block of filler tokens between the pairs and the queries).
  Zoology's generator writes `k1 v1 .. kN vN` (keys from one half of the vocabulary, values
  from the other), then a query region: each of the N keys is asked once, at an even offset
  2g after the pairs with the gaps g drawn from a power law (short gaps likelier), and a causal LM
  is scored on predicting the value at the position after each query; the other positions of the
  region hold token 0 (or random tokens, `random_non_queries`). Here the layout stays
  `k1 v1 .. kN vN . . . ? q1 .. qm`: one filler token "." that is never a key or value, all m
  queries together at the end, and the answers read at the last m positions (a tagger reads them
  at the queries, the "lm" family writes them after the input). So our gaps are all long (at
  least the filler), and every sequence holds exactly `seq_len` tokens.
- A mixture of sizes for training (`min_pairs`): Zoology trains MQAR on a mixture of
  configurations, from 4 pairs in 64 tokens to 64 pairs in 256, and tests each size alone. Here
  each training example draws its number of pairs n uniformly from min_pairs..num_pairs and keeps
  the filler in proportion (floor(F n / N) of the F tokens); its m queries ask its n keys in a
  random order, each once before any is asked again; the shorter example is padded on the left
  with PAD, which the attention families never attend, so it is short for them too. Validation
  and test examples always hold num_pairs pairs and the whole filler. Trained at 32 pairs in 128
  tokens alone, a transformer sits for thousands of steps on the plateau of "some value of the
  context" (docs/families.md): its first attention starts near 1/128 on each key.
- Induction heads (Olsson et al. 2022): a trigger token appears once earlier, followed by v;
  when the trigger appears again at the end, answer v ("[A][B] ... [A] -> [B]").
- Selective copying (Gu & Dao 2023, "Mamba", section 3.1 and Table 1): a few data symbols sit at
  random positions among noise tokens; after SEP, write the data symbols in order. Unlike plain
  copying the spacing varies, so a time-invariant filter cannot solve it; the model must select
  by content.

Reported results for these probes: ../shared/REFERENCES.md, "Probe tasks that separate attention
from recurrence".
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch
from torch import Tensor

from attnlab.spec import PAD, TaskSpec
from attnlab.tasks.base import TASKS, Batch, Task
from attnlab.tasks.sequences import letter_names


def _distinct(batch_size: int, high: int, count: int, generator: torch.Generator) -> torch.Tensor:
    """count distinct integers in [0, high) per row, in random order: (b, count)."""
    scores = torch.rand(batch_size, high, generator=generator)  # (b, high)
    return scores.argsort(dim=-1)[:, :count]  # (b, count)


@dataclass(frozen=True)
class RecallConfig:
    num_pairs: int = 8  # N, key-value pairs per example
    num_keys: int = 16  # distinct key tokens (>= num_pairs: the keys of an example are distinct)
    num_values: int = 16  # distinct value tokens
    num_queries: int = 1  # m, keys asked after "?" (distinct; > 1 is multi-query recall, Arora et al. 2023)
    seq_len: int | None = None  # t, tokens per example: filler "." pads 2N + 1 + m up to t; None = no filler
    min_pairs: int | None = None  # training examples hold min_pairs..N pairs, left-padded (val/test: N); None: N

    def __post_init__(self) -> None:
        for name in ("num_pairs", "num_keys", "num_values", "num_queries"):
            value = getattr(self, name)
            if value < 1:
                raise ValueError(f"{name} must be >= 1, got {value}")
        if self.num_keys < self.num_pairs:
            raise ValueError(f"num_keys must be >= num_pairs ({self.num_pairs}), got {self.num_keys}")
        if self.num_queries > self.num_pairs:
            raise ValueError(f"num_queries must be <= num_pairs ({self.num_pairs}), got {self.num_queries}")
        if self.min_pairs is not None and not 1 <= self.min_pairs <= self.num_pairs:
            raise ValueError(f"min_pairs must be in 1..num_pairs ({self.num_pairs}), got {self.min_pairs}")
        if self.seq_len is not None and self.seq_len < self.content_len:
            raise ValueError(
                f"seq_len must be >= 2 * num_pairs + 1 + num_queries ({self.content_len}), got {self.seq_len}"
            )

    @property
    def content_len(self) -> int:
        """Tokens that are not filler: the 2N pair tokens, "?" and the m queries."""
        return 2 * self.num_pairs + 1 + self.num_queries

    @property
    def filler(self) -> int:
        """Filler tokens between the pairs and "?": seq_len - content_len (0 when seq_len is None)."""
        return 0 if self.seq_len is None else self.seq_len - self.content_len


@TASKS.register("associative_recall")
class AssociativeRecall(Task):
    """Associative recall: read key-value pairs (then filler, if any), then keys; answer their values."""

    # tokens: 0 PAD "_", 1 "?", keys 2 .. 2+K-1 ("a", "b", ...), then values ("0", "1", ...), then,
    # only when the config asks for filler, the filler "." (so the default vocabulary is unchanged)
    Config = RecallConfig
    config: RecallConfig
    QUERY = 1
    FIRST_KEY = 2

    @property
    def first_value(self) -> int:
        return self.FIRST_KEY + self.config.num_keys

    @property
    def filler_id(self) -> int | None:
        """The filler token's id, one past the values; None when the config has no filler."""
        return self.first_value + self.config.num_values if self.config.filler else None

    @property
    def spec(self) -> TaskSpec:
        cfg = self.config
        vocab = self.first_value + cfg.num_values + (1 if cfg.filler else 0)
        return TaskSpec(
            seq_len=cfg.content_len + cfg.filler,
            answer_len=cfg.num_queries,
            vocab_size=vocab,
            num_outputs=vocab,
        )

    def sample(self, batch_size: int, generator: torch.Generator) -> Batch:
        if self.config.min_pairs is not None:
            return self._sample_mixture(batch_size, generator)
        cfg = self.config
        keys = self.FIRST_KEY + _distinct(batch_size, cfg.num_keys, cfg.num_pairs, generator)  # (b, N)
        values = torch.randint(
            self.first_value, self.first_value + cfg.num_values, (batch_size, cfg.num_pairs), generator=generator
        )  # (b, N)
        asked = _distinct(batch_size, cfg.num_pairs, cfg.num_queries, generator)  # (b, m) pair indices
        return self._lay_out(keys, values, asked)

    def _lay_out(self, keys: Tensor, values: Tensor, asked: Tensor) -> Batch:
        """`k1 v1 .. kN vN`, the filler, "?" and the asked keys; their values the targets.

        keys, values (b, N); asked (b, m) pair indices. The filler draws no random numbers: with
        seq_len unset the batches are those of a config without it."""
        b = keys.shape[0]
        pairs = torch.stack([keys, values], dim=-1).flatten(1)  # (b, 2N): k1 v1 k2 v2 ...
        filler = torch.full((b, self.config.filler), self.filler_id or PAD)  # (b, t - 2N - 1 - m)
        query = torch.full((b, 1), self.QUERY)  # (b, 1)
        inputs = torch.cat([pairs, filler, query, keys.gather(1, asked)], dim=1)  # (b, t)
        return Batch(inputs, values.gather(1, asked))  # targets (b, m)

    def _sample_mixture(self, batch_size: int, generator: torch.Generator) -> Batch:
        """Examples of n ~ U{min_pairs..N} pairs and floor(F n / N) filler each, left-padded with PAD."""
        cfg = self.config
        assert cfg.min_pairs is not None
        n = torch.randint(cfg.min_pairs, cfg.num_pairs + 1, (batch_size, 1), generator=generator)  # (b, 1)
        keys = self.FIRST_KEY + _distinct(batch_size, cfg.num_keys, cfg.num_pairs, generator)  # (b, N)
        values = torch.randint(
            self.first_value, self.first_value + cfg.num_values, (batch_size, cfg.num_pairs), generator=generator
        )  # (b, N)
        used = torch.arange(cfg.num_pairs) < n  # (b, N): the first n slots hold pairs
        # a random order of each example's n pairs (unused slots sort last), cycled to the m queries
        order = torch.rand(batch_size, cfg.num_pairs, generator=generator).masked_fill(~used, 2.0).argsort(-1)  # (b, N)
        asked = order.gather(1, torch.arange(cfg.num_queries) % n)  # (b, m)
        full = self._lay_out(keys, values, asked)  # inputs (b, t) in the N-pair layout
        keep = torch.cat(
            [
                used.repeat_interleave(2, dim=1),  # (b, 2N)
                torch.arange(cfg.filler) < cfg.filler * n // cfg.num_pairs,  # (b, F)
                torch.ones(batch_size, 1 + cfg.num_queries, dtype=torch.bool),  # (b, 1 + m)
            ],
            dim=1,
        )  # (b, t)
        moved = keep.to(torch.int8).argsort(dim=1, stable=True)  # (b, t): dropped tokens first, both in order
        inputs = full.inputs.gather(1, moved).masked_fill(~keep.gather(1, moved), PAD)  # (b, t) right-aligned
        return Batch(inputs, full.targets)  # targets (b, m)

    def eval_set(self, size: int, split: str = "val") -> Batch:
        """Validation and test examples hold num_pairs pairs each, whatever min_pairs (the examples of
        the same config without it)."""
        if self.config.min_pairs is None:
            return super().eval_set(size, split)
        return AssociativeRecall(replace(self.config, min_pairs=None)).eval_set(size, split)

    def token_names(self) -> list[str]:
        values = [str(v) for v in range(self.config.num_values)]
        filler = ["."] if self.config.filler else []
        return ["_", "?", *letter_names(self.config.num_keys), *values, *filler]


@dataclass(frozen=True)
class InductionConfig:
    length: int = 64  # t, tokens per example (the trigger, its successor and the final trigger included)
    symbols: int = 16  # distinct ordinary symbol tokens

    def __post_init__(self) -> None:
        if self.length < 3:
            raise ValueError(f"length must be >= 3, got {self.length}")
        if self.symbols < 1:
            raise ValueError(f"symbols must be >= 1, got {self.symbols}")


@TASKS.register("induction_heads")
class InductionHeads(Task):
    """Induction heads: after a trigger token reappears at the end, answer what followed it before."""

    # tokens: 0 PAD "_", 1 the trigger "*", symbols 2 .. 2+S-1 ("a", "b", ...)
    Config = InductionConfig
    config: InductionConfig
    TRIGGER = 1
    FIRST_SYMBOL = 2

    @property
    def spec(self) -> TaskSpec:
        vocab = self.FIRST_SYMBOL + self.config.symbols
        return TaskSpec(seq_len=self.config.length, answer_len=1, vocab_size=vocab, num_outputs=vocab)

    def sample(self, batch_size: int, generator: torch.Generator) -> Batch:
        t, first = self.config.length, self.FIRST_SYMBOL
        inputs = torch.randint(first, first + self.config.symbols, (batch_size, t), generator=generator)  # (b, t)
        where = torch.randint(0, t - 2, (batch_size, 1), generator=generator)  # (b, 1): p in [0, t-3]
        inputs.scatter_(1, where, self.TRIGGER)
        inputs[:, -1] = self.TRIGGER
        return Batch(inputs, inputs.gather(1, where + 1))  # targets (b, 1): the symbol after the trigger

    def token_names(self) -> list[str]:
        return ["_", "*", *letter_names(self.config.symbols)]


@dataclass(frozen=True)
class SelectiveCopyConfig:
    length: int = 64  # positions of the noise region that holds the data symbols
    num_tokens: int = 8  # data symbols to copy (at distinct positions of the region)
    symbols: int = 8  # distinct data symbol tokens

    def __post_init__(self) -> None:
        for name in ("length", "num_tokens", "symbols"):
            value = getattr(self, name)
            if value < 1:
                raise ValueError(f"{name} must be >= 1, got {value}")
        if self.num_tokens > self.length:
            raise ValueError(f"num_tokens must be <= length ({self.length}), got {self.num_tokens}")


@TASKS.register("selective_copying")
class SelectiveCopying(Task):
    """Selective copying: write the data symbols scattered among noise, in order (Gu & Dao 2023)."""

    # tokens: 0 PAD "_", 1 noise "~", 2 "SEP", 3 blank ".", symbols 4 .. 4+S-1 ("a", "b", ...)
    Config = SelectiveCopyConfig
    config: SelectiveCopyConfig
    NOISE, SEP, BLANK, FIRST_SYMBOL = 1, 2, 3, 4

    @property
    def spec(self) -> TaskSpec:
        cfg = self.config
        vocab = self.FIRST_SYMBOL + cfg.symbols
        return TaskSpec(
            seq_len=cfg.length + 1 + cfg.num_tokens, answer_len=cfg.num_tokens, vocab_size=vocab, num_outputs=vocab
        )

    def sample(self, batch_size: int, generator: torch.Generator) -> Batch:
        cfg, b = self.config, batch_size
        where = _distinct(b, cfg.length, cfg.num_tokens, generator).sort(dim=-1).values  # (b, n), ascending
        data = torch.randint(
            self.FIRST_SYMBOL, self.FIRST_SYMBOL + cfg.symbols, (b, cfg.num_tokens), generator=generator
        )  # (b, n)
        region = torch.full((b, cfg.length), self.NOISE).scatter(1, where, data)  # (b, length)
        sep = torch.full((b, 1), self.SEP)  # (b, 1)
        blanks = torch.full((b, cfg.num_tokens), self.BLANK)  # (b, n)
        inputs = torch.cat([region, sep, blanks], dim=1)  # (b, length + 1 + n)
        return Batch(inputs, data)  # positions ascend, so data is already in order of appearance

    def token_names(self) -> list[str]:
        return ["_", "~", "SEP", ".", *letter_names(self.config.symbols)]
