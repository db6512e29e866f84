"""Key-Value Memory Networks (Miller, Fisch, Dodge, Karimi, Bordes, Weston 2016, arXiv:1606.03126).

Memory holds pairs (k_h, v_h): a key used to address the slot and a value that is read from it.
The question x is embedded once; each hop addresses the keys and updates the query:

    q_1     = A Phi_X(x)                          `q`
    p_h     = softmax over h of q_j . A Phi_K(k_h)   sec. 3, "key addressing"; `core.attend(score="dot")`
    o       = sum_h p_h A Phi_V(v_h)              "value reading"
    q_{j+1} = R_j (q_j + o)                       the query update, one d x d matrix R_j per hop
    a       = argmax_i of softmax over i of q_{H+1} . B Phi_Y(y_i): the candidates y_i are the vocabulary: logits

Phi is a bag of words or the position encoding of MemN2N (`encoding`). Keys are whole sentences;
values are the same sentence (`values="sentence"`) or only its last word (`values="last_word"`, in
bAbI the room, object or answer-bearing word, like the paper's "window-level" key-value pairs
whose value is the window's centre word). One embedding A serves keys, values and the question,
as in the paper. Each hop's weights are recorded as kind "memory" with its hop index.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from attnlab.core import Traced, attend
from attnlab.memory.encoding import ENCODINGS, encode_sentences
from attnlab.memory.memn2n import memory_slots, sentence_ages

VALUE_KINDS = ("sentence", "last_word")


@dataclass(frozen=True)
class KVMemNNConfig:
    """Sizes and options of a key-value memory network (the vocabulary is the task's: KVMemNN's argument)."""

    embed_dim: int = 20  # d, the size of keys, values and queries
    hops: int = 2  # H, key addressings per question
    memory_size: int = 50  # sentences kept, the most recent; 0 = the task's m
    encoding: str = "position"  # Phi: "bow" (sum of words) or "position" (PE weighted)
    values: str = "sentence"  # what a slot's value holds: "sentence" or "last_word"
    init_std: float = 0.1  # std of the normal initialisation of every parameter

    def __post_init__(self) -> None:
        for name in ("embed_dim", "hops"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.memory_size < 0:
            raise ValueError(f"memory_size must be >= 0, got {self.memory_size}")
        if self.encoding not in ENCODINGS:
            raise ValueError(f"encoding must be one of {ENCODINGS}, got {self.encoding!r}")
        if self.values not in VALUE_KINDS:
            raise ValueError(f"values must be one of {VALUE_KINDS}, got {self.values!r}")
        if self.init_std <= 0:
            raise ValueError(f"init_std must be > 0, got {self.init_std}")


def last_words(story: Tensor) -> Tensor:
    """The last non-padding word of each sentence. story (b, m, s) -> (b, m, 1); 0 for an empty sentence."""
    present = story != 0  # (b, m, s)
    positions = torch.arange(story.shape[-1], device=story.device)  # (s,)
    last = torch.where(present, positions, -1).amax(-1, keepdim=True)  # (b, m, 1)
    picked = story.gather(-1, last.clamp(min=0))  # (b, m, 1)
    return picked.masked_fill(last < 0, 0)


class KVMemNN(Traced, nn.Module):
    """Key-value memory network over a story of sentences; one answer word per question.

    Args:
        config: the network's sizes and options (KVMemNNConfig).
        vocab_size: word ids lie in [0, vocab_size); 0 is padding; also the number of answers.
        num_sentences: m, the sentences of the task's stories: the memory size when
            config.memory_size is 0.
    """

    Config = KVMemNNConfig

    def __init__(self, config: KVMemNNConfig, vocab_size: int, num_sentences: int = 0):
        super().__init__()
        if vocab_size < 1:
            raise ValueError(f"vocab_size must be >= 1, got {vocab_size}")
        self.config = config
        self.vocab_size = vocab_size
        self.memory_size = memory_slots(config.memory_size, num_sentences)
        v, d = vocab_size, config.embed_dim
        self.embed = nn.Embedding(v, d, padding_idx=0)  # A
        self.answers = nn.Embedding(v, d)  # B, one row per candidate answer
        self.updates = nn.ModuleList(nn.Linear(d, d, bias=False) for _ in range(config.hops))  # R_j
        for p in self.parameters():
            nn.init.normal_(p, std=config.init_std)
        with torch.no_grad():
            self.embed.weight[0].zero_()

    def forward(self, story: Tensor, question: Tensor, story_mask: Tensor | None = None) -> Tensor:
        """Answer a question about a story.

        Args:
            story: (b, m, s) word ids of m sentences, oldest first; 0 = padding.
            question: (b, q) word ids.
            story_mask: (b, m) bool, True where a sentence is present; default: any word present.
                Sentences older than the `memory_size` most recent are dropped.
        Returns:
            (b, vocab_size) answer logits q_{H+1} . B y_i.
        """
        cfg = self.config
        mask = (story != 0).any(-1) if story_mask is None else story_mask  # (b, m)
        mask = mask & (sentence_ages(mask, self.memory_size + 1) < self.memory_size)
        keys = encode_sentences(self.embed, story, cfg.encoding)[:, None]  # (b, 1, m, d)
        if cfg.values == "sentence":
            values = keys
        else:
            values = self.embed(last_words(story)).sum(-2)[:, None]  # (b, 1, m, d)
        q = encode_sentences(self.embed, question, cfg.encoding)  # (b, d)
        need = self.tracing
        for hop, update in enumerate(self.updates):
            o, p = attend(
                q[:, None, None, :], keys, values, score="dot", mask=mask[:, None, None, :], need_weights=need
            )
            if p is not None:  # need: the weights of this hop
                self.record("memory", p, hop=hop)
            q = update(q + o[:, 0, 0])  # (b, d)
        return q @ self.answers.weight.t()  # (b, vocab_size)
