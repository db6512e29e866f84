import random
from collections import Counter

import pytest
import torch

from attnlab.data.toy_pair import (
    ADJECTIVES,
    DEMONSTRATIVES,
    DROPPED,
    NOUNS,
    PREPOSITIONS,
    VERBS,
    ToyPair,
    ToyPairConfig,
    generate_pairs,
    lexicon,
)

SINGULAR_NOUNS = {s for s, _ in NOUNS}
PLURAL_NOUNS = {p for _, p in NOUNS}
VERB_FORMS = {form: number for forms in VERBS for number, form in enumerate(forms)}  # 0 singular, 1 plural


@pytest.fixture(scope="module")
def pairs() -> list[ToyPair]:
    return generate_pairs(400, 7, ToyPairConfig())


def links_of(pair: ToyPair, j: int) -> list[int]:
    """Target positions linked to source position j, in order."""
    return sorted(i for jj, i in pair.alignment if jj == j)


def test_same_seed_same_pairs_other_seed_other_pairs():
    config = ToyPairConfig(seed=3)
    assert generate_pairs(50, 11, config) == generate_pairs(50, 11, config)
    assert generate_pairs(50, 11, config) != generate_pairs(50, 12, config)
    assert generate_pairs(5, random.Random(4), config) == generate_pairs(5, random.Random(4), config)
    g1, g2 = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    assert generate_pairs(5, g1, config) == generate_pairs(5, g2, config)
    # the config's seed is the language: same sources, different target words
    a, b = generate_pairs(20, 11, ToyPairConfig(seed=0)), generate_pairs(20, 11, ToyPairConfig(seed=1))
    assert [p.source for p in a] == [p.source for p in b] and [p.target for p in a] != [p.target for p in b]


def test_lexicon_words_are_distinct_and_verbs_agree():
    lex = lexicon(0)
    words = [*lex.nouns.values(), *lex.adjectives.values(), *lex.verbs.values(), *lex.postpositions.values(),
             lex.plural, lex.demonstrative]
    assert len(words) == len(set(words)) == 20 + 12 + 20 + 4 + 2
    for singular, plural in VERBS:
        assert lex.verbs[singular] != lex.verbs[plural]


def test_every_link_joins_a_word_and_its_translation(pairs):
    translations = lexicon(0).translations()
    for pair in pairs:
        for j, i in pair.alignment:
            assert pair.target[i] in translations[pair.source[j]], (pair, j, i)
        linked_sources = {j for j, _ in pair.alignment}
        for j, word in enumerate(pair.source):
            # dropped determiners are the only unaligned source words
            assert (j not in linked_sources) == (word in DROPPED)
        # every target word translates exactly one source word
        assert sorted(i for _, i in pair.alignment) == list(range(len(pair.target)))


def test_word_order_rules(pairs):
    lex = lexicon(0)
    seen = Counter()
    for pair in pairs:
        src, tgt = pair.source, pair.target
        # SOV: the verb is last in the target, and agrees with the subject (the first noun)
        (verb,) = [j for j, w in enumerate(src) if w in VERB_FORMS]
        assert links_of(pair, verb) == [len(tgt) - 1]
        subject = next(j for j, w in enumerate(src) if w in SINGULAR_NOUNS | PLURAL_NOUNS)
        assert VERB_FORMS[src[verb]] == (src[subject] in PLURAL_NOUNS)
        nouns = [j for j, w in enumerate(src) if w in SINGULAR_NOUNS | PLURAL_NOUNS]
        for j, word in enumerate(src):
            head = next(n for n in nouns if n > j) if j < nouns[-1] else None  # the noun of j's phrase
            if word in ADJECTIVES:
                # before its noun in the source, after the noun (and plural marker) in the target
                assert links_of(pair, j)[0] > max(links_of(pair, head))
                seen["adjective"] += 1
            if word in PLURAL_NOUNS:
                stem, marker = links_of(pair, j)
                assert marker == stem + 1 and tgt[marker] == lex.plural
                seen["plural"] += 1
            if word in PREPOSITIONS:
                # a postposition right after its noun phrase, which comes before the object
                assert links_of(pair, j)[0] > max(links_of(pair, head))
                assert links_of(pair, j)[0] < min(links_of(pair, nouns[1]))
                seen["postposition"] += 1
            if word in DEMONSTRATIVES:
                assert links_of(pair, j)[0] > max(links_of(pair, head))
                seen["demonstrative"] += 1
            if word in DROPPED:
                seen["dropped"] += 1
    assert min(seen.values()) > 50 and len(seen) == 5  # every rule was exercised


def test_lengths_vary_over_the_configured_range(pairs):
    lengths = Counter(len(p.source) for p in pairs)
    assert min(lengths) <= 6 and max(lengths) >= 17 and len(lengths) >= 12
    assert all(5 <= n <= 19 for n in lengths)
    short = generate_pairs(100, 0, ToyPairConfig(max_adjectives=0, max_phrases=0))
    assert {len(p.source) for p in short} == {5}


@pytest.mark.parametrize(
    "field, value", [("max_adjectives", -1), ("max_adjectives", 13), ("max_phrases", -1), ("plural_rate", 1.5)]
)
def test_config_rejects_bad_values(field, value):
    with pytest.raises(ValueError, match=f"^{field} must"):
        ToyPairConfig(**{field: value})
