import pytest

from attnlab.data.babi import BabiExample
from attnlab.data.babi_generator import GENERATED_TASKS, generate_babi

COUNTS = ("none", "one", "two", "three")


def simulate(story):
    """Replay the sentences by their words alone: actor rooms, holders, each object's room trail."""
    place, holder, trail = {}, {}, {}
    for words in story:
        actor, obj = words[0], words[-1]
        if words[-3:-1] == ("to", "the"):
            place[actor] = obj
            for o, who in holder.items():
                if who == actor and trail[o][-1] != obj:
                    trail[o].append(obj)
        elif words[1] in ("picked", "got", "grabbed"):
            assert obj not in holder, f"{obj} picked up while held: {words}"
            assert trail.get(obj, [place[actor]])[-1] == place[actor], f"{obj} picked up elsewhere: {words}"
            holder[obj] = actor
            if not trail.get(obj) or trail[obj][-1] != place[actor]:
                trail.setdefault(obj, []).append(place[actor])
        else:
            assert holder.pop(obj) == actor, f"{actor} dropped what they did not hold: {words}"
    return place, holder, trail


def expected_answer(ex: BabiExample):
    place, holder, trail = simulate(ex.story)
    q = ex.question
    if q[:2] == ("where", "is") and q[2] != "the":
        return (place[q[2]],)
    if q[:3] == ("where", "is", "the"):
        return (trail[q[3]][-1],)
    if q[:2] == ("where", "was"):
        assert trail[q[3]][-1] == q[-1]
        return (trail[q[3]][-2],)
    if q[0] == "is":
        return ("yes" if place[q[1]] == q[-1] else "no",)
    held = sorted((o for o, who in holder.items() if who == q[-2]), key=lambda o: max(
        i for i, s in enumerate(ex.story) if s[0] == q[-2] and s[-1] == o
    ))
    if q[:2] == ("how", "many"):
        return (COUNTS[len(held)],)
    return tuple(held) or ("nothing",)


@pytest.mark.parametrize("task", GENERATED_TASKS)
def test_answers_agree_with_an_independent_replay(task):
    examples = generate_babi(task, num_stories=20, seed=3)
    assert len(examples) >= 10
    for ex in examples:
        assert ex.answer == expected_answer(ex), ex
        assert ex.supporting and all(0 <= i < len(ex.story) for i in ex.supporting)
        subject = {w for w in ex.question if w not in ("the", "is", "in", "where", "was", "before")}
        assert any(subject & set(ex.story[i]) for i in ex.supporting), ex


@pytest.mark.parametrize("task", GENERATED_TASKS)
def test_same_seed_same_examples_and_other_seed_differs(task):
    assert generate_babi(task, 5, seed=1) == generate_babi(task, 5, seed=1)
    assert generate_babi(task, 5, seed=1) != generate_babi(task, 5, seed=2)


def test_answer_kinds_cover_the_task_families():
    assert {ex.answer for ex in generate_babi(6, 20, seed=0)} == {("yes",), ("no",)}
    assert {len(ex.answer) for ex in generate_babi(8, 30, seed=0)} >= {1, 2}
    assert len({ex.answer for ex in generate_babi(7, 30, seed=0)}) >= 3
    three = generate_babi(3, 30, seed=0)
    assert three and all(len(ex.supporting) >= 2 for ex in three)


def test_bad_arguments_name_the_field():
    with pytest.raises(ValueError, match="^task must"):
        generate_babi(4, 1)
    with pytest.raises(ValueError, match="^num_stories must"):
        generate_babi(1, 0)
    with pytest.raises(ValueError, match="^story_len must"):
        generate_babi(1, 1, story_len=1)
