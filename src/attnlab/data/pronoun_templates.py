"""Winograd-style sentence frames: two candidate nouns, a pronoun, and a word that flips its referent.

Levesque, Davis & Morgenstern 2012 define Winograd schemas as twins that differ in one word, which
flips the pronoun's referent. Each Template here is such a schema family with lists of nouns for
both roles; the pronoun probe (attnlab.probes.pronouns) fills them into test pairs, and the
pronouns task (attnlab.tasks.pronouns) trains on them with the roles mirrored too.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Template:
    name: str  # the schema family
    text: str  # with {a}, {b} (the candidates, in order), {p} (the pronoun), {w} (the switch word)
    first: tuple[str, ...]  # nouns that can fill {a}
    second: tuple[str, ...]  # nouns that can fill {b} (distinct from the {a} noun)
    switches: tuple[tuple[str, str], ...]  # (word making {a} the referent, word making {b} the referent)
    pronoun: str = "it"


_ANIMALS = ("dog", "cat", "horse", "goat", "fox", "rabbit", "pig", "sheep", "deer", "cow")
_VEHICLES = ("car", "truck", "bus", "van", "tractor", "motorbike", "taxi", "lorry")
TEMPLATES: tuple[Template, ...] = (
    Template(
        "cross",
        "The {a} didn't cross the {b} because {p} was too {w}.",
        _ANIMALS,
        ("street", "road", "river", "highway", "bridge", "canal", "stream", "track"),
        (("tired", "wide"), ("old", "busy"), ("scared", "dangerous")),
    ),
    Template(
        "fit",
        "The {a} doesn't fit into the {b} because {p} is too {w}.",
        ("trophy", "ball", "cake", "lamp", "book", "helmet", "pillow", "statue", "guitar", "laptop"),
        ("suitcase", "bag", "box", "drawer", "basket", "backpack", "cupboard", "crate"),
        (("big", "small"), ("large", "narrow"), ("wide", "tiny")),
    ),
    Template(
        "lift",
        "The {a} couldn't lift the {b} because {p} was too {w}.",
        ("robot", "donkey", "machine", "puppy", "kitten", "pony", "toy", "drone"),
        ("rock", "log", "table", "piano", "boulder", "crate", "trunk", "sofa"),
        (("weak", "heavy"), ("small", "big")),
    ),
    Template(
        "eat",
        "The {a} ate the {b} because {p} was {w}.",
        _ANIMALS,
        ("apple", "sandwich", "cake", "fish", "carrot", "cookie", "pie", "bread", "cheese"),
        (("hungry", "delicious"), ("starving", "tasty")),
    ),
    Template(
        "break",
        "The {a} broke the {b} because {p} was so {w}.",
        ("rock", "hammer", "brick", "stone", "ball", "anvil", "shovel", "boulder"),
        ("window", "vase", "glass", "plate", "mirror", "bowl", "cup", "lamp"),
        (("hard", "fragile"), ("heavy", "thin")),
    ),
    Template(
        "see",
        "The {a} could not see over the {b} because {p} was too {w}.",
        ("puppy", "kitten", "pony", "goat", "lamb", "dog", "rabbit", "duck"),
        ("fence", "wall", "hedge", "gate", "counter", "table", "sofa", "car"),
        (("short", "tall"), ("small", "high")),
    ),
    Template(
        "overtake",
        "The {a} overtook the {b} because {p} was {w}.",
        _VEHICLES,
        _VEHICLES,
        (("faster", "slower"), ("quick", "slow")),
    ),
    Template(
        "hide",
        "The {a} was hidden behind the {b} because {p} was so {w}.",
        ("coin", "key", "ring", "toy", "button", "pebble", "stamp", "marble"),
        ("sofa", "curtain", "tree", "box", "door", "book", "chair", "bed"),
        (("small", "large"), ("tiny", "big")),
    ),
)
