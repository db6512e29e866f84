"""The generated pronoun task: determinism, hand-checked sentences and answers, twins, held-out pairs."""

from collections import defaultdict

import pytest
import torch
import torch.nn.functional as F

from attnlab.data.pronoun_templates import TEMPLATES as PROBE_TEMPLATES
from attnlab.errors import ConfigError
from attnlab.spec import PAD
from attnlab.tasks import TASKS, build_task
from attnlab.tasks.pronouns import (
    QUERY,
    TEMPLATE_NAMES,
    Pronouns,
    PronounsConfig,
    Sentence,
    frame_words,
    is_heldout,
)


@pytest.fixture(scope="module")
def task():
    return Pronouns()


def draw(task, seed, size=16):
    return task.sample(size, torch.Generator().manual_seed(seed))


def words_of(task, row):
    names = task.token_names()
    return [names[int(i)] for i in row if int(i) != PAD]


def test_registered_and_built_from_plain_strings():
    assert TASKS.get("pronouns") is Pronouns
    task = build_task("pronouns", {"templates": "fit,hold", "nouns": "4"})
    assert task.config == PronounsConfig(templates=("fit", "hold"), nouns=4)
    assert {s.template for s in task.draw(64, torch.Generator().manual_seed(0))} == {"fit", "hold"}


def test_same_seed_same_batch_other_seed_other_batch(task):
    a, b, c = draw(task, 1), draw(task, 1), draw(task, 2)
    assert torch.equal(a.inputs, b.inputs) and torch.equal(a.targets, b.targets)
    assert not torch.equal(a.inputs, c.inputs)
    assert torch.equal(task.eval_set(8, "test").inputs, Pronouns().eval_set(8, "test").inputs)
    assert not torch.equal(task.eval_set(8, "test").inputs, task.eval_set(8, "val").inputs)


def test_shapes_match_spec(task):
    spec, batch = task.spec, draw(task, 0)
    longest = max(len(frame_words(t)) for t in PROBE_TEMPLATES)  # the mirrored frames are no longer
    assert spec.seq_len == longest + 1 and spec.answer_len == 1
    assert spec.num_outputs == spec.vocab_size == len(task.token_names())
    assert batch.inputs.shape == (16, spec.seq_len) and batch.targets.shape == (16, 1)
    assert batch.inputs.max() < spec.vocab_size and bool((batch.inputs[:, -1] == QUERY).all())


def test_hand_checked_sentence_tokens_answer_and_positions(task):
    pair = [Sentence("fit", "trophy", "suitcase", "big", 0), Sentence("fit", "trophy", "suitcase", "small", 1)]
    batch = task.encode(pair)
    expected = ["the", "trophy", "doesn't", "fit", "into", "the", "suitcase", "because", "it", "is", "too", "big", "?"]
    assert words_of(task, batch.inputs[0]) == expected
    t = task.spec.seq_len
    assert bool((batch.inputs[:, : t - len(expected)] == PAD).all())  # left padding
    names = task.token_names()
    assert [names[int(i)] for i in batch.targets[:, 0]] == ["trophy", "suitcase"]
    m = task.mentions(batch)
    offset = t - len(expected)
    assert m.pronoun.tolist() == [offset + 8] * 2
    assert m.candidates.tolist() == [[offset + 1, offset + 6]] * 2
    assert m.switch.tolist() == [offset + 11] * 2 and m.query.tolist() == [t - 1] * 2
    assert m.label.tolist() == [0, 1]
    assert task.render(batch, 1) == (
        "sentence: The trophy doesn't fit into the suitcase because it is too small.\n"
        "candidates: trophy / suitcase\nanswer: suitcase"
    )
    wrong = F.one_hot(batch.targets.flip(0), task.spec.vocab_size).float()  # (2, 1, V): the other twin's answer
    assert task.render(batch, 1, wrong).endswith("predicted: trophy")
    assert task.metrics(wrong, batch)["accuracy"] == 0.0


def test_mirrored_frame_puts_the_roles_in_the_other_order(task):
    batch = task.encode([Sentence("hold", "suitcase", "trophy", "small", 0)])
    expected = ["the", "suitcase", "couldn't", "hold", "the", "trophy", "because", "it", "was", "too", "small", "?"]
    assert words_of(task, batch.inputs[0]) == expected
    assert task.token_names()[int(batch.targets[0, 0])] == "suitcase"


def test_switch_words_mean_what_english_says(task):
    """Every (frame, switch word) always gives the same referent slot, and the hand-checked ones are right."""
    slot = defaultdict(set)
    for s in task.draw(4000, torch.Generator().manual_seed(5)):
        slot[(s.template, s.switch)].add(s.label)
    assert all(len(labels) == 1 for labels in slot.values())
    checked = {
        ("fit", "big"): 0, ("fit", "small"): 1,  # the trophy is too big / the suitcase too small
        ("hold", "small"): 0, ("hold", "big"): 1,
        ("lift", "weak"): 0, ("lift", "heavy"): 1,  # the robot too weak / the rock too heavy
        ("lifted", "heavy"): 0, ("lifted", "weak"): 1,
        ("eaten", "delicious"): 0, ("eaten", "hungry"): 1,  # the cake was eaten by the dog
        ("overtaken", "slower"): 0, ("overtaken", "faster"): 1,
        ("hide", "small"): 0, ("hid", "small"): 1,  # the coin is small in both frames
    }
    for key, label in checked.items():
        assert slot[key] == {label}, key
    # no single switch word decides: "small" points at the first slot in some frames and the second in others
    assert {label for (frame, word), labels in slot.items() if word == "small" for label in labels} == {0, 1}


def test_eval_twins_differ_in_the_switch_word_only_and_flip_the_answer(task):
    batch = task.eval_set(64, "val")
    m = task.mentions(batch)
    assert m.label.tolist() == [0, 1] * 32  # exactly balanced: always-first scores 50%
    for k in range(0, 64, 2):
        differ = (batch.inputs[k] != batch.inputs[k + 1]).nonzero()[:, 0].tolist()
        assert differ == [int(m.switch[k])]
        assert int(batch.targets[k, 0]) != int(batch.targets[k + 1, 0])
        assert torch.equal(m.candidates[k], m.candidates[k + 1])


def test_training_never_sees_a_heldout_noun_pair(task):
    def pairs(batch):
        nouns = batch.inputs.gather(1, task.mentions(batch).candidates).tolist()
        return {frozenset(p) for p in nouns}

    train = pairs(draw(task, 0, size=3000))
    held = pairs(task.eval_set(512, "val")) | pairs(task.eval_set(512, "test"))
    assert train and held and not train & held
    names = task.token_names()
    assert all(is_heldout(*(names[i] for i in p), task.config.heldout) for p in held)


def test_mentions_reject_a_row_without_two_candidates(task):
    batch = task.encode([Sentence("fit", "trophy", "suitcase", "big", 0)])
    m = task.mentions(batch)
    batch.inputs[0, m.candidates[0, 1]] = PAD
    with pytest.raises(ValueError, match="row 0 has 1 candidate nouns, expected 2"):
        task.mentions(batch)


def test_config_subset_and_validation():
    small = Pronouns(PronounsConfig(templates=("fit", "hold"), nouns=4))
    assert small.spec.vocab_size < Pronouns().spec.vocab_size
    assert len(TEMPLATE_NAMES) == len(set(TEMPLATE_NAMES)) == len(PROBE_TEMPLATES) + 7
    with pytest.raises(ValueError, match="unknown frame 'juggle'"):
        PronounsConfig(templates=("fit", "juggle"))
    with pytest.raises(ValueError, match="nouns must be >= 2, got 1"):
        PronounsConfig(nouns=1)
    with pytest.raises(ValueError, match=r"heldout must be in \(0, 1\), got 1.0"):
        PronounsConfig(heldout=1.0)
    with pytest.raises(ConfigError, match="templates: a frame is named twice"):
        build_task("pronouns", {"templates": "fit,fit"})
    # two vehicles give one unordered pair, so it is either all held out or all trained on
    with pytest.raises(ValueError, match="frame 'overtake': .* both must be >= 1"):
        Pronouns(PronounsConfig(templates=("overtake",), nouns=2))
