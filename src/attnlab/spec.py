"""The contract between tasks and model families: the shapes a task hands a model, and the
special token ids both sides agree on. Tasks, data and models all import it from here, below them.
"""

from __future__ import annotations

from dataclasses import dataclass

PAD = 0  # padding token id in every token task


@dataclass(frozen=True)
class TaskSpec:
    """The shapes a model must fit: each task builds one from its config."""

    seq_len: int  # t, the input length of every batch (shorter examples are left-padded with PAD)
    answer_len: int  # n, answers are predicted at the last n input positions
    vocab_size: int = 0  # input token ids lie in [0, vocab_size); 0 for float inputs
    input_features: int = 0  # f > 0: inputs are floats (b, t, f) instead of token ids
    num_outputs: int = 0  # classes per answer (vocab_size for token answers); 1 for regression
    layout: tuple[
        int, ...
    ] = ()  # flat input's structure: (m, s, q) = m sentences of s words, q question words; () plain
    eos_id: int | None = None  # answers of any length up to n end with this id, then PAD; None: always n answers
    image: tuple[int, ...] = ()  # (c, y, x): inputs are images (b, c, y, x) of floats; () otherwise

    @property
    def tokens(self) -> bool:
        """True when inputs and answers are token ids."""
        return self.input_features == 0 and not self.image

    @property
    def regression(self) -> bool:
        """True when each answer is one real number (num_outputs == 1)."""
        return self.num_outputs == 1
