"""End-To-End Memory Networks (Sukhbaatar, Szlam, Weston, Fergus 2015, arXiv:1503.08895).

The story's sentences x_i are written to memory twice, as keys m_i and values c_i; the question q
becomes the controller state u; each of K hops reads memory and adds what it read to u:

    m_i  = sum_j l_j * A x_ij + T_A(i)        eq. 1 with PE (sec. 4.1) and temporal encoding (sec. 4.1)
    c_i  = sum_j l_j * C x_ij + T_C(i)        `values`
    u^1  = sum_j l_j * B q_j                  `u`
    p_i  = softmax over i of u^T m_i          eq. 1, `core.attend(score="dot")` (kind "memory")
    o    = sum_i p_i c_i                      eq. 2
    u^{k+1} = u^k + o^k                       eq. 5 (adjacent tying), or H u^k + o^k (layer-wise)
    a    = softmax of W u^{K+1}               eq. 3; the model returns the logits W u^{K+1}

    l_kj = (1 - j/J) - (k/d)(1 - 2j/J)        position encoding (PE); j, k count from 1, J words, d dims

The authors' released code (facebookarchive/MemNN, MemN2N-babi-matlab) differs from the text in
places that options here follow, each off by default:
- `encoding="centred"`: its PE, l_kj = 1 + 4 (k - (d+1)/2)(j - (J+1)/2) / (d J), with J fixed for
  every sentence and question (the sentence width plus one for the time word, which is written as
  a sentence's last word, so T_A's row is weighted by l_kJ too). Its weights are centred on 1, not
  0.5: sentence vectors about twice as large, hop scores about four times.
- `empty_slots="zero"`: all `memory_size` slots enter the softmax; an empty one holds zero vectors
  and scores 0, so p_i = exp(s_i) / (sum_j exp(s_j) + empty slots) and a hop can read (almost)
  nothing. With "mask" (the default) the softmax runs over the story's sentences only.
- each weight matrix's gradient clipped alone (train.clip_each); the released code keeps the time
  words in the word lookup table, so `time_in_tables=True` clips each temporal table together
  with its word table, as one matrix (`clip_groups`).
- `nil_gradient=True`: padding is the released code's "nil" word, whose row is zero (reset after
  every update) but takes a gradient: from the padding of every sentence and question, weighted
  as a word there would be (`encoding.padding_sums`), and from the empty slots. Its gradient does
  not change the answers, but it counts in the norm a gradient is clipped by, and it is much the
  largest part of it, so each clipped step of the real rows is smaller. Here the row's value
  stays out of the forward pass (a zero that passes the gradient to row 0 of each table).

Tying (sec. 2.2): adjacent shares A^{k+1} = C^k, B = A^1, W^T = C^K, so K + 1 embedding tables
serve K hops; layer-wise shares A^k = A and C^k = C across hops and adds the mapping H.
Temporal encoding indexes sentences by age (0 = the most recent), so left or right padding of
the story does not matter. Random noise (RN) adds empty memories while training, which age the
sentences before them. `noise_scheme="sentence"` (the paper's text): each sentence is preceded by
an empty memory with probability `random_noise`. `noise_scheme="story"` (the released code): a
story of n sentences gets u empty memories, u uniform on 0..ceil(random_noise n), and its
sentences take a random n of the n + u ages in order, so the most recent one may age too.
Linear start (LS): with `linear_start` on, p_i = u^T m_i is used as is, with no softmax, as the
paper's first training phase; this is a plain product `p @ c`, not attention, so it does not go
through `core.attend`. Turn it off (`model.linear_start = False`) when the validation loss stalls;
the flag is a buffer (`linear_phase`) of the model's state, so a checkpoint keeps the phase.
"""

from __future__ import annotations

import math
import typing
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from attnlab.core import Traced, attend
from attnlab.core.fast import FastPath
from attnlab.memory.bags import weighted_bags
from attnlab.memory.encoding import (
    ENCODINGS,
    centred_weight,
    combine_parts,
    encode_sentences,
    padding_sums,
    part_tables,
    word_weights,
)

EMPTY_SLOTS = ("mask", "zero")
NOISE_SCHEMES = ("sentence", "story")
TYINGS = ("adjacent", "layerwise")


@dataclass(frozen=True)
class MemN2NConfig:
    """Sizes and options of an end-to-end memory network (the vocabulary is the task's: MemN2N's argument).

    The two linear_start_* fields schedule the end of the LS phase; the training loop applies them
    through the "memn2n" family's `on_eval` (attnlab.models.memory), the network never reads them.
    """

    embed_dim: int = 20  # d, the size of m_i, c_i and u
    hops: int = 3  # K, memory reads per question
    memory_size: int = 50  # sentences kept, the most recent (rows of the temporal tables); 0 = the task's m
    encoding: str = "position"  # sentence encoding: "bow" (sum of words), "position" (PE) or "centred" (see above)
    temporal: bool = True  # add the learned T_A(i), T_C(i) by sentence age
    random_noise: float = 0.0  # RN: training-time rate of empty memories (noise_scheme says how they are placed)
    noise_scheme: str = "sentence"  # RN: "sentence" (one before each sentence w.p. random_noise) or "story" (above)
    linear_start: bool = False  # LS: start with p = u^T m unnormalised (no softmax)
    linear_start_patience: int = 1  # LS ends after this many evaluations without a new low val loss; 0 = never
    linear_start_steps: int = 0  # LS ends at the first evaluation at or after this step; 0 = no such limit
    tying: str = "adjacent"  # weight tying across hops: "adjacent" or "layerwise"
    init_std: float = 0.1  # std of the normal initialisation of every embedding
    empty_slots: str = "mask"  # "mask": the softmax over the story's sentences; "zero": over every slot (see above)
    time_in_tables: bool = False  # train.clip_each clips each temporal table with its word table, as one (see above)
    nil_gradient: bool = False  # padding's gradient reaches row 0 of each table and counts in clipping (see above)

    def __post_init__(self) -> None:
        for name in ("embed_dim", "hops"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("memory_size", "linear_start_patience", "linear_start_steps"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.encoding not in ENCODINGS:
            raise ValueError(f"encoding must be one of {ENCODINGS}, got {self.encoding!r}")
        if self.tying not in TYINGS:
            raise ValueError(f"tying must be one of {TYINGS}, got {self.tying!r}")
        if self.empty_slots not in EMPTY_SLOTS:
            raise ValueError(f"empty_slots must be one of {EMPTY_SLOTS}, got {self.empty_slots!r}")
        if self.noise_scheme not in NOISE_SCHEMES:
            raise ValueError(f"noise_scheme must be one of {NOISE_SCHEMES}, got {self.noise_scheme!r}")
        if not 0.0 <= self.random_noise < 1.0:
            raise ValueError(f"random_noise must be in [0, 1), got {self.random_noise}")
        if self.init_std <= 0:
            raise ValueError(f"init_std must be > 0, got {self.init_std}")
        if self.nil_gradient and self.encoding == "position":
            raise ValueError("nil_gradient needs encoding 'centred' or 'bow' (PE gives padding no weight)")


def sentence_ages(story_mask: Tensor, memory_size: int, empty: Tensor | None = None) -> Tensor:
    """Each sentence's age: how many present sentences (and RN empty memories) come after it.

    Args:
        story_mask: (b, m) bool, True where a sentence is present.
        memory_size: ages are clamped to memory_size - 1 (the last temporal row).
        empty: (b, m) bool, True where an empty memory precedes the sentence (RN); None outside training.
    Returns:
        (b, m) long ages, 0 = the most recent sentence.
    """
    slots = story_mask.long()
    if empty is not None:
        slots = slots + empty.long() * slots
    after = slots.flip(-1).cumsum(-1).flip(-1) - slots  # (b, m)
    return after.clamp(max=memory_size - 1)


def story_noise_ages(story_mask: Tensor, memory_size: int, draws: Tensor, rate: float) -> Tensor:
    """Ages under the released code's random noise: the n sentences take a random n of n + u ages.

    u is uniform on 0..ceil(rate n); the chosen ages keep the sentences' order (the most recent
    sentence gets the smallest), so the most recent sentence is not always age 0.

    Args:
        story_mask: (b, m) bool, True where a sentence is present.
        memory_size: ages are clamped to memory_size - 1 (the last temporal row).
        draws: (b, 1 + p) uniform in [0, 1): column 0 picks u, the others rank the p >= n + u ages.
        rate: random_noise.
    Returns:
        (b, m) long ages (those of absent slots are meaningless).
    """
    n = story_mask.sum(-1)  # (b,)
    most = torch.ceil(rate * n)  # (b,)
    blanks = torch.minimum((draws[:, 0] * (most + 1)).floor(), most)  # (b,) uniform on 0..most
    ages = torch.arange(draws.shape[-1] - 1, device=draws.device)  # (p,)
    keys = draws[:, 1:].masked_fill(ages >= (n + blanks)[:, None], 2.0)  # (b, p): ages past n + u rank last
    chosen = keys.argsort(-1).argsort(-1) < n[:, None]  # (b, p): the n lowest keys
    ordered = torch.where(chosen, ages, ages.numel()).sort(-1).values  # (b, p): the chosen ages ascending first
    newest_first = sentence_ages(story_mask, ages.numel())  # (b, m): 0 = the most recent present sentence
    return ordered.gather(-1, newest_first).clamp(max=memory_size - 1)  # (b, m)


def memory_slots(memory_size: int, num_sentences: int) -> int:
    """The sentences a memory keeps: memory_size, or with memory_size 0 the task's m (num_sentences).

    A one-line ValueError when neither gives at least one slot.
    """
    slots = memory_size or num_sentences
    if slots < 1:
        raise ValueError(f"memory_size must be >= 1 (or 0 with num_sentences >= 1), got {memory_size}")
    return slots


class MemN2N(FastPath, Traced, nn.Module):
    """End-to-end memory network over a story of sentences; one answer word per question.

    Args:
        config: the network's sizes and options (MemN2NConfig).
        vocab_size: word ids lie in [0, vocab_size); 0 is padding; also the number of answers.
        num_sentences: m, the sentences of the task's stories: the memory size when
            config.memory_size is 0.
    """

    Config = MemN2NConfig
    fast_step_name = "sentences as weighted bags of present words (memory.bags)"
    linear_phase: Tensor  # () bool buffer, True in the LS phase

    def __init__(self, config: MemN2NConfig, vocab_size: int, num_sentences: int = 0):
        super().__init__()
        if vocab_size < 1:
            raise ValueError(f"vocab_size must be >= 1, got {vocab_size}")
        self.config = config
        self.vocab_size = vocab_size
        self.memory_size = memory_slots(config.memory_size, num_sentences)
        # a buffer, not an attribute, so that saved weights and checkpoints carry the LS phase
        self.register_buffer("linear_phase", torch.tensor(config.linear_start))
        v, d, K = vocab_size, config.embed_dim, config.hops
        tables = K + 1 if config.tying == "adjacent" else 3  # adjacent: E_0..E_K; layer-wise: A, C, B
        embeddings = [nn.Embedding(v, d, padding_idx=0) for _ in range(tables)]
        self.embeddings = nn.ModuleList(embeddings)
        rows = tables if config.tying == "adjacent" else 2  # one T per memory table: T_A, T_C
        temporal = (nn.Parameter(torch.zeros(self.memory_size, d)) for _ in range(rows))
        self.temporal = nn.ParameterList(temporal) if config.temporal else None
        self.mapping = nn.Linear(d, d, bias=False) if config.tying == "layerwise" else None  # H
        self.out = nn.Linear(d, v, bias=False) if config.tying == "layerwise" else None  # W
        for p in self.parameters():
            nn.init.normal_(p, std=config.init_std)
        for e in embeddings:
            with torch.no_grad():
                e.weight[0].zero_()

    @property
    def linear_start(self) -> bool:
        """True while in the LS phase (no softmax); set it False to re-insert the softmax."""
        return bool(self.linear_phase)

    @linear_start.setter
    def linear_start(self, value: bool) -> None:
        self.linear_phase.fill_(bool(value))

    def draw_noise(self, shape: tuple[int, ...] | torch.Size, device: torch.device | None = None) -> Tensor | None:
        """The uniform draws that random noise (RN) uses in a training forward on a (b, m) story mask;
        None without RN. "sentence": (b, m); "story": (b, 1 + m + ceil(random_noise m))."""
        cfg = self.config
        if not (self.training and cfg.random_noise > 0):
            return None
        b, m = shape
        if cfg.noise_scheme == "story":
            return torch.rand(b, 1 + m + math.ceil(cfg.random_noise * m), device=device)
        return torch.rand(b, m, device=device)  # (b, m)

    def clip_groups(self) -> list[tuple[str, ...]]:
        """Parameter names train.clip_each clips as one matrix: with `time_in_tables`, each word
        table and its temporal table (rows of one lookup table in the released code)."""
        if not (self.config.time_in_tables and self.temporal is not None):
            return []
        return [(f"embeddings.{k}.weight", f"temporal.{k}") for k in range(len(self.temporal))]

    def sentence_length(self, story: Tensor) -> int:
        """J of the centred encoding: the story's sentence width, plus the time word's slot with temporal encoding."""
        return story.shape[-1] + (1 if self.config.temporal else 0)

    def _memories(self, story: Tensor, ages: Tensor) -> list[Tensor]:
        """Every memory table's sentence vectors, m_i = A x_i + T_A(age_i) for each table A, in one pass.

        story (b, m, s), ages (b, m) -> one (b, m, d) per memory table (adjacent: E_0..E_K; layer-wise: A, C).
        The "fast" path reads only the present words' rows (`_memories_bags`); "eager" gathers every word's row.
        """
        cfg = self.config
        count = len(self.embeddings) if cfg.tying == "adjacent" else 2
        tables = [typing.cast(nn.Embedding, e).weight for e in self.embeddings[:count]]  # count x (V, d)
        temporal = list(self.temporal) if self.temporal is not None else None  # count x (M, d)
        length = self.sentence_length(story)
        if temporal is not None and cfg.encoding == "centred":  # the time word is word J of its sentence
            weight = centred_weight(length, length, cfg.embed_dim).to(tables[0])  # (d,)
            temporal = [t * weight for t in temporal]  # count x (M, d)
        weights = word_weights(story, cfg.encoding, length, cfg.embed_dim).to(tables[0].dtype)  # (b, m, w, s)
        if self.path != "eager" and not self.tracing:
            return self._memories_bags(story, weights, ages, tables, temporal)
        weight = torch.cat(tables, -1)  # (V, count*d): every table's row of a word, side by side
        parts = weights @ F.embedding(story, weight)  # (b, m, w, count*d), via every word's row
        vectors = combine_parts(parts, cfg.embed_dim)  # (b, m, count*d)
        if temporal is not None:
            vectors = vectors + F.embedding(ages, torch.cat(temporal, -1))  # (b, m, count*d)
        return list(vectors.split(cfg.embed_dim, -1))  # count x (b, m, d)

    def _memories_bags(
        self, story: Tensor, weights: Tensor, ages: Tensor, tables: list[Tensor], temporal: list[Tensor] | None
    ) -> list[Tensor]:
        """`_memories` as one `weighted_bags` call over every table, without a (b, m, s, d) tensor.

        The tables are stacked as rows (table c's word v is row c V + v, its age a row count V + c M + a),
        sentence i of table c is a bag of its words' rows plus, with temporal encoding, its age's row
        (weight 1 in the first part), and the result comes out table-major: (count, b, m, d).
        """
        count, vocab, w = len(tables), tables[0].shape[0], weights.shape[-2]
        c = torch.arange(count, device=story.device).view(count, 1, 1, 1)  # (count, 1, 1, 1)
        tokens = story + c * vocab * (story != 0)  # (count, b, m, s); padding stays 0
        rows = torch.cat(tables)  # (count V, d)
        weights = weights.expand(count, *weights.shape)  # (count, b, m, w, s)
        if temporal is not None:
            memory = temporal[0].shape[0]
            age_rows = count * vocab + c * memory + ages[..., None]  # (count, b, m, 1)
            tokens = torch.cat([tokens, age_rows], -1)  # (count, b, m, s + 1)
            first = torch.zeros(w, 1, dtype=weights.dtype, device=weights.device)  # (w, 1): weight 1 in part 0
            first[0] = 1.0
            weights = torch.cat([weights, first.expand(*weights.shape[:-1], 1)], -1)  # (count, b, m, w, s + 1)
        vectors = weighted_bags(tokens, weights, part_tables(rows, w, temporal))  # (count, b, m, d)
        return list(vectors.unbind(0))  # count x (b, m, d)

    def forward(
        self, story: Tensor, question: Tensor, story_mask: Tensor | None = None, noise: Tensor | None = None
    ) -> Tensor:
        """Answer a question about a story.

        Args:
            story: (b, m, s) word ids of m sentences, oldest first; 0 = padding.
            question: (b, q) word ids.
            story_mask: (b, m) bool, True where a sentence is present; default: any word present.
                Sentences older than the `memory_size` most recent are dropped.
            noise: uniform draws in [0, 1) for random noise (RN) while training, shaped as
                `draw_noise` draws them; with the "sentence" scheme an empty memory precedes
                sentence i where noise[:, i] < random_noise. Default: drawn here (`draw_noise`).
        Returns:
            (b, vocab_size) answer logits W u^{K+1}.
        """
        cfg = self.config
        mask = (story != 0).any(-1) if story_mask is None else story_mask  # (b, m)
        exact = sentence_ages(mask, self.memory_size + 1)  # (b, m), ages past memory_size collapse
        mask = mask & (exact < self.memory_size)
        if noise is None:
            noise = self.draw_noise(mask.shape, mask.device)  # while training with RN, else None
        if noise is None or not self.training or cfg.random_noise == 0:
            ages = sentence_ages(mask, self.memory_size)  # (b, m)
        elif cfg.noise_scheme == "story":
            ages = story_noise_ages(mask, self.memory_size, noise, cfg.random_noise)  # (b, m)
        else:
            ages = sentence_ages(mask, self.memory_size, noise < cfg.random_noise)  # (b, m)
        b_table, length = (0 if cfg.tying == "adjacent" else 2), self.sentence_length(story)
        u = encode_sentences(self.embeddings[b_table], question, cfg.encoding, length)  # (b, d)
        memories = self._memories(story, ages)  # (b, m, d) per table
        nil, empty_slot = self._nil_rows(), None
        if nil:  # each sentence's and the question's padding weighs nil rows of zero (module docstring)
            u = u + padding_sums(question == 0, cfg.encoding, length, cfg.embed_dim) * nil[b_table]
            pad = padding_sums(story == 0, cfg.encoding, length, cfg.embed_dim)  # (b, m, d)
            memories = [vectors + pad * row for vectors, row in zip(memories, nil)]
            every = torch.ones(length, dtype=torch.bool, device=story.device)  # an empty slot: nil words only
            empty_slot = padding_sums(every, cfg.encoding, length, cfg.embed_dim)  # (d,)
        keys, values = memories[0], memories[1]  # layer-wise: A and C; adjacent: A^1 = E_0 and C^1 = E_1
        slots = (0, 1)  # the tables of the keys and the values
        for hop in range(cfg.hops):
            if cfg.tying == "adjacent":
                keys, values, slots = memories[hop], memories[hop + 1], (hop, hop + 1)  # A^{k+1} = C^k
            null = None if empty_slot is None else (empty_slot * nil[slots[0]], empty_slot * nil[slots[1]])
            o = self._read(u, keys, values, mask, hop, null)  # (b, d)
            u = (u if self.mapping is None else self.mapping(u)) + o
        if self.out is not None:
            return self.out(u)  # (b, vocab_size)
        weight = typing.cast(nn.Embedding, self.embeddings[-1]).weight  # (V, d)
        if nil:  # the nil word's answer scores 0, as its row is zero
            weight = torch.cat([nil[-1][None], weight[1:]])
        return u @ weight.t()  # (b, vocab_size), W^T = C^K

    def _nil_rows(self) -> list[Tensor]:
        """With nil_gradient, each table's row 0 as a zero that passes its gradient back: (d,) each; else []."""
        if not self.config.nil_gradient:
            return []
        rows = [typing.cast(nn.Embedding, e).weight[0] for e in self.embeddings]  # (d,) each
        return [row - row.detach() for row in rows]

    def _read(
        self, u: Tensor, keys: Tensor, values: Tensor, mask: Tensor, hop: int, null: tuple[Tensor, Tensor] | None = None
    ) -> Tensor:
        """One hop's read: o = sum_i p_i c_i. u (b, d), keys/values (b, m, d), mask (b, m) -> (b, d).

        null: an empty slot's key and value, (d,) each, with empty_slots "zero" (zero vectors by default).
        """
        q = u[:, None, None, :]  # (b, 1, 1, d)
        k, v = keys[:, None], values[:, None]  # (b, 1, m, d)
        p: Tensor | None
        if self.linear_start:
            p = (q @ k.transpose(-2, -1)).masked_fill(~mask[:, None, None, :], 0.0)  # (b, 1, 1, m)
            out = p @ v  # (b, 1, 1, d): LS phase, weights left unnormalised
        elif self.config.empty_slots == "zero":
            # the empty slots, each a zero key and value scoring 0, as one null slot scoring log(their count)
            empty = (self.memory_size - mask.sum(-1)).clamp(min=0)  # (b,)
            zero = torch.zeros_like(k[:, :, :1])  # (b, 1, 1, d)
            null_k, null_v = (zero, zero) if null is None else (zero + null[0], zero + null[1])
            k, v = torch.cat([k, null_k], -2), torch.cat([v, null_v], -2)  # (b, 1, m + 1, d)
            full = torch.cat([mask, (empty > 0)[:, None]], -1)[:, None, None, :]  # (b, 1, 1, m + 1)
            bias = torch.cat([torch.zeros_like(mask, dtype=q.dtype), empty.clamp(min=1).log()[:, None]], -1)
            out, p = attend(q, k, v, score="dot", mask=full, bias=bias[:, None, None, :], need_weights=self.tracing)
            p = None if p is None else p[..., :-1]  # (b, 1, 1, m): the sentences' weights
        else:
            need = self.tracing
            out, p = attend(q, k, v, score="dot", mask=mask[:, None, None, :], need_weights=need)
        if self.tracing and p is not None:
            self.record("memory", p, hop=hop, linear=self.linear_start)
        return out[:, 0, 0]  # (b, d)
