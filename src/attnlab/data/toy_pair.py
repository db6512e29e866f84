"""A generated language pair whose word alignments are known, for tests and alignment error rates.

The source is a small English-like SVO language:

    sentence  = NP(subject) verb NP(object) PP*          "the big dog sees some cats near this house"
    NP        = det adj* noun                            singular or plural
    PP        = prep NP

The target language is made up. Its words are syllable strings drawn from a seeded RNG (the
config's `seed`), so the lexicon is a function of the seed rather than a written dictionary. Its
grammar differs from the source's in ways attention has to learn:

    verb last (SOV):            subject, then the PPs, then the object, then the verb
    adjectives after the noun:  noun [PL] adj* [DEM], adjectives in source order
    postpositions:              each PP becomes NP + postposition
    plural marker:              a plural noun becomes its stem followed by the separate word PL,
                                so one source word aligns to two target words
    verb agreement:             a verb becomes one of two target words by the subject's number
    articles dropped:           "the", "a"/"an" and "some" have no translation (unaligned source words);
                                "this"/"these" become the demonstrative DEM after the noun phrase

Every `ToyPair` carries its alignment as a set of (source index, target index) links, all sure
links in the sense of Och & Ney (2003): the word-to-word translations the generator applied.
The same config and seed always give the same pairs.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from functools import lru_cache

import torch

# (singular, plural) source nouns; each has one target stem
NOUNS = (
    ("cat", "cats"),
    ("dog", "dogs"),
    ("bird", "birds"),
    ("horse", "horses"),
    ("fox", "foxes"),
    ("farmer", "farmers"),
    ("teacher", "teachers"),
    ("child", "children"),
    ("king", "kings"),
    ("queen", "queens"),
    ("baker", "bakers"),
    ("sailor", "sailors"),
    ("wolf", "wolves"),
    ("mouse", "mice"),
    ("goat", "goats"),
    ("frog", "frogs"),
    ("doctor", "doctors"),
    ("student", "students"),
    ("rabbit", "rabbits"),
    ("house", "houses"),
)
ADJECTIVES = ("big", "small", "red", "old", "young", "happy", "quiet", "brown", "green", "tall", "lazy", "clever")
# (with a singular subject, with a plural subject); each form has its own target word
VERBS = (
    ("sees", "see"),
    ("likes", "like"),
    ("chases", "chase"),
    ("finds", "find"),
    ("watches", "watch"),
    ("follows", "follow"),
    ("feeds", "feed"),
    ("carries", "carry"),
    ("helps", "help"),
    ("hears", "hear"),
)
PREPOSITIONS = ("near", "behind", "under", "with")
DETERMINERS = (("the", "a", "this"), ("the", "some", "these"))  # (singular, plural)
DROPPED = frozenset({"the", "a", "an", "some"})  # determiners without a target word
DEMONSTRATIVES = frozenset({"this", "these"})  # determiners translated as DEM

_ONSETS = "ptkbdgmnlrsvz"
_VOWELS = "aeiou"


@dataclass(frozen=True)
class ToyPairConfig:
    """The language pair (its lexicon seed) and the sentence shapes drawn from it."""

    seed: int = 0  # draws the target lexicon: same seed, same target words
    max_adjectives: int = 2  # adjectives per noun phrase, drawn uniformly from 0..max_adjectives
    max_phrases: int = 2  # prepositional phrases after the object, drawn uniformly from 0..max_phrases
    plural_rate: float = 0.5  # chance that a noun phrase is plural

    def __post_init__(self) -> None:
        if not 0 <= self.max_adjectives <= len(ADJECTIVES):
            raise ValueError(f"max_adjectives must be in 0..{len(ADJECTIVES)}, got {self.max_adjectives}")
        if self.max_phrases < 0:
            raise ValueError(f"max_phrases must be >= 0, got {self.max_phrases}")
        if not 0.0 <= self.plural_rate <= 1.0:
            raise ValueError(f"plural_rate must be in [0, 1], got {self.plural_rate}")


@dataclass(frozen=True)
class ToyPair:
    """A source sentence, its translation, and which words translate which."""

    source: tuple[str, ...]  # source words
    target: tuple[str, ...]  # target words
    alignment: frozenset[tuple[int, int]]  # sure links (source index, target index)


@dataclass(frozen=True)
class ToyLexicon:
    """The target words of one seed."""

    nouns: dict[str, str]  # source noun lemma (singular) -> target stem
    adjectives: dict[str, str]  # source adjective -> target adjective
    verbs: dict[str, str]  # source verb form (agreement included) -> target verb
    postpositions: dict[str, str]  # source preposition -> target postposition
    plural: str  # the plural marker that follows a plural noun
    demonstrative: str  # the translation of "this" and "these", after the noun phrase

    def translations(self) -> dict[str, frozenset[str]]:
        """Every source word -> the target words it may align to (empty for dropped determiners)."""
        out: dict[str, frozenset[str]] = {w: frozenset() for w in DROPPED}
        out.update({w: frozenset({self.demonstrative}) for w in DEMONSTRATIVES})
        for singular, plural in NOUNS:
            out[singular] = frozenset({self.nouns[singular]})
            out[plural] = frozenset({self.nouns[singular], self.plural})
        for table in (self.adjectives, self.verbs, self.postpositions):
            out.update({w: frozenset({t}) for w, t in table.items()})
        return out


@lru_cache(maxsize=16)
def lexicon(seed: int = 0) -> ToyLexicon:
    """The target lexicon of a seed: distinct syllable strings (1 syllable for function words)."""
    rng = random.Random(f"toy-pair-lexicon-{seed}")
    used: set[str] = set()

    def word(syllables: int) -> str:
        while True:
            text = "".join(rng.choice(_ONSETS) + rng.choice(_VOWELS) for _ in range(syllables))
            if rng.random() < 0.3:
                text += "n"
            if text not in used:
                used.add(text)
                return text

    plural, demonstrative = word(1), word(1)
    postpositions = {p: word(1) for p in PREPOSITIONS}
    nouns = {singular: word(2) for singular, _ in NOUNS}
    adjectives = {a: word(rng.choice((2, 3))) for a in ADJECTIVES}
    verbs = {form: word(3) for forms in VERBS for form in forms}
    return ToyLexicon(nouns, adjectives, verbs, postpositions, plural, demonstrative)


@dataclass
class _Phrase:
    """Source words, target words and links (j, i) of one phrase, in the phrase's own positions."""

    source: list[str]
    target: list[str]
    links: list[tuple[int, int]]


def _noun_phrase(rng: random.Random, lex: ToyLexicon, config: ToyPairConfig) -> tuple[_Phrase, bool]:
    """det adj* noun -> noun [PL] adj* [DEM]; returns the phrase and whether it is plural."""
    plural = rng.random() < config.plural_rate
    det = rng.choice(DETERMINERS[plural])
    adjectives = rng.sample(ADJECTIVES, rng.randint(0, config.max_adjectives))
    singular, plural_form = NOUNS[rng.randrange(len(NOUNS))]
    noun = 1 + len(adjectives)  # the noun's source position, after det and adjectives
    # (source position, target word) in target order; a dropped determiner appears nowhere
    target = [(noun, lex.nouns[singular])]
    if plural:
        target.append((noun, lex.plural))
    target += [(1 + k, lex.adjectives[a]) for k, a in enumerate(adjectives)]
    if det in DEMONSTRATIVES:
        target.append((0, lex.demonstrative))
    source = [det, *adjectives, plural_form if plural else singular]
    if det == "a" and source[1][0] in "aeiou":
        source[0] = "an"
    return _Phrase(source, [t for _, t in target], [(j, i) for i, (j, _) in enumerate(target)]), plural


def _concat(parts: list[_Phrase], source_order: list[int]) -> ToyPair:
    """Join phrases: targets in list order, sources in `source_order` (indices into parts)."""
    source_start, offset = {}, 0
    for k in source_order:
        source_start[k], offset = offset, offset + len(parts[k].source)
    source = [w for k in source_order for w in parts[k].source]
    target: list[str] = []
    links: set[tuple[int, int]] = set()
    for k, part in enumerate(parts):
        links.update((source_start[k] + j, len(target) + i) for j, i in part.links)
        target.extend(part.target)
    return ToyPair(tuple(source), tuple(target), frozenset(links))


def _sentence(rng: random.Random, lex: ToyLexicon, config: ToyPairConfig) -> ToyPair:
    subject, plural = _noun_phrase(rng, lex, config)
    obj, _ = _noun_phrase(rng, lex, config)
    form = VERBS[rng.randrange(len(VERBS))][plural]
    verb = _Phrase([form], [lex.verbs[form]], [(0, 0)])
    phrases = []
    for _ in range(rng.randint(0, config.max_phrases)):
        prep = rng.choice(PREPOSITIONS)
        phrase, _ = _noun_phrase(rng, lex, config)
        # prep NP -> NP postposition: the NP's source positions shift past the preposition
        links = [(j + 1, i) for j, i in phrase.links] + [(0, len(phrase.target))]
        phrases.append(_Phrase([prep, *phrase.source], [*phrase.target, lex.postpositions[prep]], links))
    # target: subject PP* object verb; source: subject verb object PP*
    parts = [subject, *phrases, obj, verb]
    n = len(phrases)
    source_order = [0, n + 2, n + 1, *range(1, n + 1)]
    return _concat(parts, source_order)


def generate_pairs(
    count: int, generator_or_seed: int | random.Random | torch.Generator = 0, config: ToyPairConfig | None = None
) -> list[ToyPair]:
    """Draw sentence pairs of the config's language.

    Args:
        count: how many pairs.
        generator_or_seed: an int seed, a `random.Random`, or a `torch.Generator` (one draw of it
            seeds the sentences); the lexicon comes from `config.seed`, not from this.
        config: the language and sentence shapes (default `ToyPairConfig()`).
    Returns:
        `count` ToyPairs; source lengths range from 5 to 5 + 2 * max_adjectives + max_phrases *
        (3 + max_adjectives) words (5 to 19 with the defaults).
    """
    config = config or ToyPairConfig()
    if count < 0:
        raise ValueError(f"count must be >= 0, got {count}")
    if isinstance(generator_or_seed, random.Random):
        rng = generator_or_seed
    elif isinstance(generator_or_seed, torch.Generator):
        rng = random.Random(int(torch.randint(2**62, (1,), generator=generator_or_seed)))
    else:
        rng = random.Random(int(generator_or_seed))
    lex = lexicon(config.seed)
    return [_sentence(rng, lex, config) for _ in range(count)]
