"""The Neural Turing Machine's algorithmic tasks on random bit vectors (Graves et al. 2014, section 4).

    "ntm_copy"              4.1  read L random 8-bit vectors and a delimiter, write them back
    "ntm_repeat_copy"       4.2  read L vectors and a repeat count R, write them R times, then an end marker
    "ntm_associative_recall" 4.3 read items of 3 x 6-bit vectors, then one of them as a query; write the next item
    "ntm_priority_sort"     4.5  read 20 vectors with priorities in [-1, 1]; write the 16 most urgent, most urgent first

Inputs are floats (b, t, f): the bits plus the tasks' flag channels (delimiters, the repeat count,
the priority). Answers are bits (b, n, o), predicted as logits at the last n steps and scored with
the sigmoid cross-entropy. Lengths vary per example, so examples are left-padded with zero steps
and an answer row that a shorter example does not have is filled with IGNORE: it counts in
neither the loss nor the metrics. Since a random vector can be all zeros, like the padding, the
sequences of copy and repeat copy open with a delimiter step as well as close with one. Sequence length is a train-time vs test-time parameter: train
with `min_length=1, max_length=20`, then evaluate the same weights on a task built with
`min_length=max_length=120` (`attnlab.train.retarget`).

The metric is the paper's: errors per sequence, the number of answer bits whose thresholded
prediction is wrong, averaged over sequences ("bit_errors"); "bits" is the cross-entropy cost
per sequence in bits (the y axis of the paper's learning curves); "accuracy" is the share of
sequences with no bit wrong.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor

from attnlab.spec import TaskSpec
from attnlab.tasks.base import TASKS, Batch, Task

IGNORE = -1.0  # an answer entry that does not exist for this example (a shorter sequence)


def _check_range(config: object, low: str, high: str, floor: int = 1) -> None:
    lo, hi = getattr(config, low), getattr(config, high)
    name = type(config).__name__
    if lo < floor:
        raise ValueError(f"{name}.{low}: must be >= {floor}; got {lo}")
    if hi < lo:
        raise ValueError(f"{name}.{high}: must be >= {low} = {lo}; got {hi}")


def _lengths(low: int, high: int, b: int, generator: torch.Generator) -> Tensor:
    return torch.randint(low, high + 1, (b,), generator=generator)  # (b,)


def _bits(b: int, t: int, width: int, generator: torch.Generator) -> Tensor:
    return torch.randint(0, 2, (b, t, width), generator=generator).float()  # (b, t, width)


def _place(rows: list[Tensor], t: int, width: int) -> Tensor:
    """Left-pad each example's (t_k, width) steps with zero steps to (b, t, width)."""
    out = torch.zeros(len(rows), t, width)  # (b, t, f)
    for k, row in enumerate(rows):
        out[k, t - row.shape[0] :] = row
    return out


def _answers(rows: list[Tensor], n: int, width: int) -> Tensor:
    """Right-align each example's (n_k, width) answers in (b, n, width), IGNORE before them."""
    out = torch.full((len(rows), n, width), IGNORE)  # (b, n, o)
    for k, row in enumerate(rows):
        out[k, n - row.shape[0] :] = row
    return out


class _BitTask(Task):
    """Shared loss, metrics and rendering of the bit-vector tasks."""

    metric: ClassVar[str] = "bit_errors"
    maximize: ClassVar[bool] = False

    def loss(self, logits: Tensor, batch: Batch) -> Tensor:
        """logits (b, n, o) -> mean sigmoid cross-entropy over the answer entries that exist."""
        valid = batch.targets != IGNORE  # (b, n, o)
        return F.binary_cross_entropy_with_logits(logits[valid], batch.targets[valid])

    def metrics(self, logits: Tensor, batch: Batch) -> dict[str, float]:
        """bit_errors and bits (cross-entropy in bits) per sequence; accuracy = sequences with no error."""
        valid = batch.targets != IGNORE  # (b, n, o)
        wrong = ((logits > 0).float() != batch.targets) & valid  # (b, n, o)
        errors = wrong.flatten(1).sum(-1).float()  # (b,)
        cost = F.binary_cross_entropy_with_logits(logits, batch.targets.clamp(min=0), reduction="none")  # (b, n, o)
        bits = (cost * valid).flatten(1).sum(-1) / math.log(2)  # (b,)
        return {
            "bit_errors": errors.mean().item(),
            "bits": bits.mean().item(),
            "accuracy": (errors == 0).float().mean().item(),
        }

    def token_names(self) -> list[str]:
        return []  # inputs are bit vectors, not tokens

    def render(self, batch: Batch, index: int = 0, logits: Tensor | None = None) -> str:
        """The input steps and answer rows of one example as 0/1 strings (flags shown as numbers)."""
        x, y = batch.inputs[index], batch.targets[index]
        used = (x.abs().sum(-1) > 0).nonzero().flatten()  # steps after the left padding, blanks trimmed
        steps = x[int(used[0]) : int(used[-1]) + 1] if len(used) else x[:0]
        shown = " ".join("".join(str(int(v)) if v in (0, 1) else f"[{v:.2f}]" for v in r.tolist()) for r in steps)
        rows = [r for r in y if (r != IGNORE).all()]
        text = f"input: {shown}\nanswer: " + " ".join("".join(str(int(v)) for v in r.tolist()) for r in rows)
        if logits is not None:
            kept = logits[index][(y != IGNORE).all(-1)]  # (n_k, o)
            text += "\npredicted: " + " ".join("".join(str(int(v > 0)) for v in r.tolist()) for r in kept)
        return text


@dataclass(frozen=True)
class CopyConfig:
    bits: int = 8  # width of each random vector
    min_length: int = 1  # shortest sequence to copy
    max_length: int = 20  # longest; the spec's t = 2 * max_length + 2

    def __post_init__(self) -> None:
        _check_range(self, "min_length", "max_length")
        _check_range(self, "bits", "bits")


@TASKS.register("ntm_copy")
class CopyBits(_BitTask):
    """Copy (section 4.1): a delimiter step, x_1..x_L, a delimiter step, then L blank steps at which
    to write x_1..x_L.

    Channels: bits, then the delimiter flag. Answers: the L vectors at the last L steps.
    """

    Config = CopyConfig
    config: CopyConfig

    @property
    def spec(self) -> TaskSpec:
        cfg = self.config
        return TaskSpec(
            seq_len=2 * cfg.max_length + 2, answer_len=cfg.max_length, input_features=cfg.bits + 1, num_outputs=cfg.bits
        )

    def sample(self, batch_size: int, generator: torch.Generator) -> Batch:
        cfg, spec = self.config, self.spec
        lengths = _lengths(cfg.min_length, cfg.max_length, batch_size, generator)  # (b,)
        seqs = _bits(batch_size, cfg.max_length, cfg.bits, generator)  # (b, L_max, bits)
        rows, answers = [], []
        for k, length in enumerate(lengths.tolist()):
            x = torch.zeros(2 * length + 2, cfg.bits + 1)  # (2L + 2, f)
            x[1 : length + 1, : cfg.bits] = seqs[k, :length]
            x[[0, length + 1], cfg.bits] = 1.0  # the delimiters before and after the sequence
            rows.append(x)
            answers.append(seqs[k, :length])  # (L, bits)
        return Batch(_place(rows, spec.seq_len, cfg.bits + 1), _answers(answers, spec.answer_len, cfg.bits))


@dataclass(frozen=True)
class RepeatCopyConfig:
    bits: int = 8  # width of each random vector
    min_length: int = 1  # shortest sequence
    max_length: int = 10  # longest sequence
    min_repeats: int = 1  # fewest copies asked for
    max_repeats: int = 10  # most copies; also the scale of the repeat-count input (R / max_repeats)

    def __post_init__(self) -> None:
        _check_range(self, "min_length", "max_length")
        _check_range(self, "min_repeats", "max_repeats")
        _check_range(self, "bits", "bits")


@TASKS.register("ntm_repeat_copy")
class RepeatCopyBits(_BitTask):
    """Repeat copy (section 4.2): a delimiter step, x_1..x_L, a delimiter step holding the repeat
    count R on its own channel, then L * R + 1 blank steps: write the sequence R times, then raise
    the end marker.

    Channels: bits, the delimiter flag, the repeat count R / max_repeats. Outputs: bits and the end marker.
    """

    Config = RepeatCopyConfig
    config: RepeatCopyConfig

    @property
    def spec(self) -> TaskSpec:
        cfg = self.config
        n = cfg.max_length * cfg.max_repeats + 1
        return TaskSpec(
            seq_len=cfg.max_length + 2 + n, answer_len=n, input_features=cfg.bits + 2, num_outputs=cfg.bits + 1
        )

    def sample(self, batch_size: int, generator: torch.Generator) -> Batch:
        cfg, spec = self.config, self.spec
        lengths = _lengths(cfg.min_length, cfg.max_length, batch_size, generator)  # (b,)
        repeats = _lengths(cfg.min_repeats, cfg.max_repeats, batch_size, generator)  # (b,)
        seqs = _bits(batch_size, cfg.max_length, cfg.bits, generator)  # (b, L_max, bits)
        rows, answers = [], []
        for k, (length, times) in enumerate(zip(lengths.tolist(), repeats.tolist())):
            n = length * times + 1
            x = torch.zeros(length + 2 + n, cfg.bits + 2)  # (L + 2 + n, f)
            x[1 : length + 1, : cfg.bits] = seqs[k, :length]
            x[[0, length + 1], cfg.bits] = 1.0  # the delimiters before and after the sequence
            x[length + 1, cfg.bits + 1] = times / cfg.max_repeats
            y = torch.zeros(n, cfg.bits + 1)  # (n, bits + 1)
            y[:-1, : cfg.bits] = seqs[k, :length].repeat(times, 1)
            y[-1, cfg.bits] = 1.0  # the end marker
            rows.append(x)
            answers.append(y)
        return Batch(_place(rows, spec.seq_len, cfg.bits + 2), _answers(answers, spec.answer_len, cfg.bits + 1))


@dataclass(frozen=True)
class RecallConfig:
    bits: int = 6  # width of each vector
    item_size: int = 3  # vectors per item
    min_items: int = 2  # fewest items in a list
    max_items: int = 6  # most items

    def __post_init__(self) -> None:
        _check_range(self, "min_items", "max_items", floor=2)
        _check_range(self, "bits", "bits")
        _check_range(self, "item_size", "item_size")


@TASKS.register("ntm_associative_recall")
class RecallBits(_BitTask):
    """Associative recall (section 4.3): a list of items, each opened by an item delimiter, then a
    query item between two query delimiters; write the item that followed the query in the list.

    Channels: bits, the item delimiter, the query delimiter. Answers: the next item's vectors.
    The query is any item but the last, drawn uniformly.
    """

    Config = RecallConfig
    config: RecallConfig

    @property
    def spec(self) -> TaskSpec:
        cfg = self.config
        s = cfg.item_size
        t = cfg.max_items * (s + 1) + (s + 2) + s
        return TaskSpec(seq_len=t, answer_len=s, input_features=cfg.bits + 2, num_outputs=cfg.bits)

    def sample(self, batch_size: int, generator: torch.Generator) -> Batch:
        cfg, spec = self.config, self.spec
        s, w = cfg.item_size, cfg.bits
        counts = _lengths(cfg.min_items, cfg.max_items, batch_size, generator)  # (b,)
        items = _bits(batch_size, cfg.max_items * s, w, generator).view(batch_size, cfg.max_items, s, w)
        picks = (torch.rand(batch_size, generator=generator) * (counts - 1)).long()  # (b,) in 0..count-2
        rows, answers = [], []
        for k, (count, pick) in enumerate(zip(counts.tolist(), picks.tolist())):
            x = torch.zeros(count * (s + 1) + (s + 2) + s, w + 2)  # (t_k, f)
            for item in range(count):
                start = item * (s + 1)
                x[start, w] = 1.0  # item delimiter
                x[start + 1 : start + 1 + s, :w] = items[k, item]
            query = count * (s + 1)
            x[query, w + 1] = 1.0  # query delimiter
            x[query + 1 : query + 1 + s, :w] = items[k, pick]
            x[query + 1 + s, w + 1] = 1.0  # query delimiter
            rows.append(x)
            answers.append(items[k, pick + 1])  # (s, w)
        return Batch(_place(rows, spec.seq_len, w + 2), _answers(answers, spec.answer_len, w))


@dataclass(frozen=True)
class PrioritySortConfig:
    bits: int = 8  # width of each vector
    num_inputs: int = 20  # vectors read, each with a priority drawn from U[-1, 1]
    num_sorted: int = 16  # the most urgent vectors to write, highest priority first

    def __post_init__(self) -> None:
        _check_range(self, "num_sorted", "num_inputs")
        _check_range(self, "bits", "bits")


@TASKS.register("ntm_priority_sort")
class PrioritySortBits(_BitTask):
    """Priority sort (section 4.5): 20 vectors with scalar priorities, a delimiter, then 16 blank
    steps at which to write the 16 vectors of highest priority in order of decreasing priority.

    Channels: bits, the delimiter flag, the priority.
    """

    Config = PrioritySortConfig
    config: PrioritySortConfig

    @property
    def spec(self) -> TaskSpec:
        cfg = self.config
        return TaskSpec(
            seq_len=cfg.num_inputs + 1 + cfg.num_sorted,
            answer_len=cfg.num_sorted,
            input_features=cfg.bits + 2,
            num_outputs=cfg.bits,
        )

    def sample(self, batch_size: int, generator: torch.Generator) -> Batch:
        cfg = self.config
        m, n, w = cfg.num_inputs, cfg.num_sorted, cfg.bits
        vectors = _bits(batch_size, m, w, generator)  # (b, m, w)
        priority = torch.rand(batch_size, m, generator=generator) * 2 - 1  # (b, m)
        inputs = torch.zeros(batch_size, m + 1 + n, w + 2)  # (b, t, f)
        inputs[:, :m, :w] = vectors
        inputs[:, :m, w + 1] = priority
        inputs[:, m, w] = 1.0  # the delimiter
        order = priority.argsort(dim=1, descending=True)[:, :n]  # (b, n)
        targets = vectors.gather(1, order[..., None].expand(-1, -1, w))  # (b, n, w)
        return Batch(inputs, targets)
