"""Winograd-style pronoun resolution as a generated token task: "pronouns".

Winograd schemas (Levesque, Davis & Morgenstern 2012) come as twins that differ in one word, the
switch word, which flips the referent of a pronoun:

    the trophy doesn't fit into the suitcase because it is too big    ?   -> trophy
    the trophy doesn't fit into the suitcase because it is too small  ?   -> suitcase

Every example is one such sentence over a small word vocabulary followed by a query token "?";
the answer, read at the query (the last position), is the antecedent noun's own token. The
sentence frames are the pronoun probe's templates (attnlab.data.pronoun_templates.TEMPLATES, used by
import) plus mirrored frames written here, in which the same two roles appear in the other order
("the suitcase couldn't hold the trophy because it was too small" -> suitcase).

What a model must use. Both twins hold the same nouns at the same positions, so neither the
position of a candidate nor the nouns themselves decide: always answering the first (or the
second) candidate scores exactly 50% on twins. The switch word alone does not decide either: the
same word points at the first candidate in one frame and at the second in another ("small" means
the suitcase in "fit", the robot in "lift", the suitcase again in the mirrored "hold"). Only the
switch word read together with the frame (the verb, or which roles the nouns play) gives the
referent; the model must then copy that candidate's token to the query position, which in an
attention model means looking at it.

Held-out noun pairs: an unordered pair of nouns is held out (or not) once for every frame, by a
fixed hash of the pair; training draws only the other pairs, and `eval_set` ("val" and "test")
draws only held-out ones, as twins (rows 2k and 2k + 1), so its labels are exactly balanced.
Every noun is still seen in training, with other partners.

Token layout: 0 PAD "_", 1 the query "?", then the nouns (alphabetical), then every other word
(frame words, switch words and pronouns, alphabetical). Sentences are left-padded to the longest
frame plus the query.
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from attnlab.data.pronoun_templates import TEMPLATES as PROBE_TEMPLATES
from attnlab.data.pronoun_templates import Template
from attnlab.spec import PAD, TaskSpec
from attnlab.tasks.base import TASKS, Batch, Task

QUERY = 1  # the token after the sentence at which the answer is read
FIRST_NOUN = 2  # id of the first noun; nouns fill one contiguous block of ids


def mirrored(base: str, name: str, text: str) -> Template:
    """The frame `base` of the probe templates with its two roles in the other order.

    `text` puts the old {b} role first, so the nouns lists swap, and each switch pair swaps too:
    the word that made the old {a} noun the referent now points at the {b} slot.
    """
    template = next(t for t in PROBE_TEMPLATES if t.name == base)
    switches = tuple((second, first) for first, second in template.switches)
    return Template(name, text, template.second, template.first, switches, template.pronoun)


MIRRORS: tuple[Template, ...] = (
    mirrored("cross", "crossed", "The {a} was not crossed by the {b} because {p} was too {w}."),
    mirrored("fit", "hold", "The {a} couldn't hold the {b} because {p} was too {w}."),
    mirrored("lift", "lifted", "The {a} couldn't be lifted by the {b} because {p} was too {w}."),
    mirrored("eat", "eaten", "The {a} was eaten by the {b} because {p} was {w}."),
    mirrored("break", "broken", "The {a} was broken by the {b} because {p} was so {w}."),
    mirrored("overtake", "overtaken", "The {a} was overtaken by the {b} because {p} was {w}."),
    mirrored("hide", "hid", "The {a} hid the {b} because {p} was so {w}."),
)
TEMPLATES: tuple[Template, ...] = PROBE_TEMPLATES + MIRRORS
TEMPLATE_NAMES: tuple[str, ...] = tuple(t.name for t in TEMPLATES)


def frame_words(template: Template) -> list[str]:
    """The template as lowercase words without punctuation, slots kept as "{a}", "{b}", "{p}", "{w}"."""
    return re.findall(r"\{[abpw]\}|[\w']+", template.text.lower())


@dataclass(frozen=True)
class PronounsConfig:
    templates: tuple[str, ...] = TEMPLATE_NAMES  # the sentence frames to draw from (names in TEMPLATES)
    nouns: int = 8  # candidate nouns per role: the first `nouns` of each frame's two lists
    heldout: float = 0.25  # share of noun pairs kept out of training, for val and test only

    def __post_init__(self) -> None:
        if not self.templates:
            raise ValueError("templates must name at least one frame")
        for name in self.templates:
            if name not in TEMPLATE_NAMES:
                raise ValueError(f"templates: unknown frame {name!r}; known: {', '.join(TEMPLATE_NAMES)}")
        if len(set(self.templates)) != len(self.templates):
            raise ValueError(f"templates: a frame is named twice in {self.templates}")
        if self.nouns < 2:
            raise ValueError(f"nouns must be >= 2, got {self.nouns}")
        if not 0.0 < self.heldout < 1.0:
            raise ValueError(f"heldout must be in (0, 1), got {self.heldout}")


@dataclass(frozen=True)
class Sentence:
    """One generated example, before it becomes token ids."""

    template: str  # the frame's name in TEMPLATES
    first: str  # the noun in the first candidate slot {a}
    second: str  # the noun in the second candidate slot {b}
    switch: str  # the switch word in {w}
    label: int  # 0: the pronoun means `first`; 1: it means `second`

    @property
    def answer(self) -> str:
        return (self.first, self.second)[self.label]


@dataclass
class Mentions:
    """Where the words that matter sit in each row of a batch (positions index the t inputs)."""

    pronoun: Tensor  # (b,) position of the pronoun
    candidates: Tensor  # (b, 2) positions of the two candidate nouns, in sentence order
    switch: Tensor  # (b,) position of the switch word
    query: Tensor  # (b,) position of the query token (always t - 1)
    label: Tensor  # (b,) which candidate the answer is: 0 the first, 1 the second


def is_heldout(a: str, b: str, share: float) -> bool:
    """Whether the unordered noun pair {a, b} is held out: a fixed hash, the same in every frame."""
    low, high = sorted((a, b))
    return random.Random(f"pronouns:{low}|{high}").random() < share


@TASKS.register("pronouns")
class Pronouns(Task):
    """Pronouns: name the antecedent of "it" in a Winograd-style sentence (answer at the query)."""

    Config = PronounsConfig
    config: PronounsConfig

    def __init__(self, config: PronounsConfig | None = None) -> None:
        super().__init__(config)
        cfg = self.config
        self.templates = [next(t for t in TEMPLATES if t.name == name) for name in cfg.templates]
        self.frames = {t.name: frame_words(t) for t in self.templates}
        nouns = sorted({n for t in self.templates for n in (*t.first[: cfg.nouns], *t.second[: cfg.nouns])})
        switch_words = {w for t in self.templates for pair in t.switches for w in pair}
        pronoun_words = {t.pronoun for t in self.templates}
        fixed = {w for f in self.frames.values() for w in f if not w.startswith("{")}
        self._names = ["_", "?", *nouns, *sorted(fixed | switch_words | pronoun_words)]
        self.ids = {w: i for i, w in enumerate(self._names)}
        self.end_noun = FIRST_NOUN + len(nouns)  # one past the last noun id
        self._switch_ids = torch.tensor(sorted(self.ids[w] for w in switch_words))
        self._pronoun_ids = torch.tensor(sorted(self.ids[w] for w in pronoun_words))
        self.pairs: dict[str, dict[str, list[tuple[str, str]]]] = {"train": {}, "heldout": {}}
        for t in self.templates:
            pairs = [(a, b) for a in t.first[: cfg.nouns] for b in t.second[: cfg.nouns] if a != b]
            held = [p for p in pairs if is_heldout(*p, cfg.heldout)]
            train = [p for p in pairs if not is_heldout(*p, cfg.heldout)]
            if not held or not train:
                raise ValueError(
                    f"frame {t.name!r}: {len(train)} training and {len(held)} held-out noun pairs with nouns="
                    f"{cfg.nouns}, heldout={cfg.heldout}; both must be >= 1 (use more nouns)"
                )
            self.pairs["train"][t.name], self.pairs["heldout"][t.name] = train, held

    @property
    def spec(self) -> TaskSpec:
        vocab = len(self._names)
        t = max(len(f) for f in self.frames.values()) + 1
        return TaskSpec(seq_len=t, answer_len=1, vocab_size=vocab, num_outputs=vocab)

    def token_names(self) -> list[str]:
        return list(self._names)

    # ------------------------------------------------------------------ drawing sentences

    def draw(
        self, size: int, generator: torch.Generator, *, split: str = "train", twins: bool = False
    ) -> list[Sentence]:
        """size sentences from the noun pairs of split ("train" or "heldout").

        twins=True: rows 2k and 2k + 1 are twins (same frame, nouns and switch pair; labels 0, 1).
        """
        if split not in self.pairs:
            raise ValueError(f"split must be 'train' or 'heldout', got {split!r}")
        schemas = (size + 1) // 2 if twins else size
        frame = torch.randint(len(self.templates), (schemas,), generator=generator).tolist()
        where = torch.rand(schemas, 2, generator=generator).tolist()  # which pair, which switch pair
        labels = torch.randint(2, (schemas,), generator=generator).tolist()
        out = []
        for n in range(schemas):
            t = self.templates[frame[n]]
            pairs = self.pairs[split][t.name]
            a, b = pairs[int(where[n][0] * len(pairs))]
            switch = t.switches[int(where[n][1] * len(t.switches))]
            for label in (0, 1) if twins else (labels[n],):
                out.append(Sentence(t.name, a, b, switch[label], label))
        return out[:size]

    def words(self, sentence: Sentence) -> list[str]:
        """The sentence's words (without the query)."""
        fills = {"{a}": sentence.first, "{b}": sentence.second, "{w}": sentence.switch}
        pronoun = next(t.pronoun for t in self.templates if t.name == sentence.template)
        return [fills.get(w, pronoun if w == "{p}" else w) for w in self.frames[sentence.template]]

    def encode(self, sentences: Sequence[Sentence]) -> Batch:
        """Token ids, left-padded, with the query last: inputs (b, t), targets (b, 1)."""
        t = self.spec.seq_len
        inputs = torch.full((len(sentences), t), PAD, dtype=torch.long)  # (b, t)
        for n, s in enumerate(sentences):
            ids = [self.ids[w] for w in self.words(s)] + [QUERY]
            inputs[n, t - len(ids) :] = torch.tensor(ids)
        targets = torch.tensor([[self.ids[s.answer]] for s in sentences], dtype=torch.long)  # (b, 1)
        return Batch(inputs, targets)

    def sample(self, batch_size: int, generator: torch.Generator) -> Batch:
        """Training sentences: noun pairs that are not held out, labels drawn independently."""
        return self.encode(self.draw(batch_size, generator))

    def eval_set(self, size: int, split: str = "val") -> Batch:
        """Held-out noun pairs only, as twins (rows 2k, 2k + 1): the same set for every run."""
        seeds = {"val": 2**31 - 2, "test": 2**31 - 3}
        if split not in seeds:
            raise ValueError(f"split must be 'val' or 'test', got {split!r}")
        return self.encode(self.draw(size, torch.Generator().manual_seed(seeds[split]), split="heldout", twins=True))

    # ------------------------------------------------------------------ reading batches

    def mentions(self, batch: Batch) -> Mentions:
        """The positions of the pronoun, the two candidates, the switch word and the query in every row.

        Read from the token ids (nouns are one block of ids; each frame has one pronoun and one
        switch word), so it works on any batch of this task; label compares the answer with the
        two candidates' tokens.
        """
        inputs = batch.inputs
        b, t = inputs.shape
        noun = (inputs >= FIRST_NOUN) & (inputs < self.end_noun)  # (b, t)
        pronoun = torch.isin(inputs, self._pronoun_ids)  # (b, t)
        switch = torch.isin(inputs, self._switch_ids)  # (b, t)
        for name, found, want in (("candidate nouns", noun, 2), ("pronouns", pronoun, 1), ("switch words", switch, 1)):
            bad = (found.sum(1) != want).nonzero()
            if len(bad):
                row = int(bad[0, 0])
                raise ValueError(f"mentions: row {row} has {int(found[row].sum())} {name}, expected {want}")
        where = torch.arange(t).expand(b, t)  # (b, t)
        candidates = where[noun].view(b, 2)  # (b, 2), in sentence order
        match = inputs.gather(1, candidates) == batch.targets[:, :1]  # (b, 2)
        if not bool((match.sum(1) == 1).all()):
            row = int((match.sum(1) != 1).nonzero()[0, 0])
            raise ValueError(f"mentions: the answer of row {row} is not exactly one of its two candidates")
        return Mentions(
            pronoun=where[pronoun],
            candidates=candidates,
            switch=where[switch],
            query=torch.full((b,), t - 1),
            label=match[:, 1].long(),
        )

    def render(self, batch: Batch, index: int = 0, logits: Tensor | None = None) -> str:
        """The sentence as English, its two candidates, the answer and (given logits) the prediction."""
        names = self._names
        row = [names[int(i)] for i in batch.inputs[index] if int(i) not in (PAD, QUERY)]
        sentence = " ".join(row)
        nouns = [w for w in row if FIRST_NOUN <= self.ids[w] < self.end_noun]
        text = (
            f"sentence: {sentence[:1].upper()}{sentence[1:]}.\n"
            f"candidates: {' / '.join(nouns)}\n"
            f"answer: {names[int(batch.targets[index, 0])]}"
        )
        if logits is not None:
            text += f"\npredicted: {names[int(logits[index, -1].argmax())]}"
        return text
