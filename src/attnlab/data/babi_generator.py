"""bAbI-style stories generated from a seed, so tests and the tour run without the data files.

A small world in the manner of Weston et al. 2015 (arXiv:1502.05698): actors move between rooms,
pick up and drop objects; questions are asked about the state reached so far. Six task kinds
follow the numbering of the real tasks:

    1  single supporting fact    where is <actor> ?                   (the actor's last move)
    2  two supporting facts      where is the <object> ?              (who holds it, where they went)
    3  three supporting facts    where was the <object> before the <room> ?
    6  yes/no questions          is <actor> in the <room> ?
    7  counting                  how many objects is <actor> carrying ?
    8  lists/sets                what is <actor> carrying ?           (a list answer, or 'nothing')

Every example is a `BabiExample`, the reader's record, with the supporting statements marked.
The same (task, num_stories, seed) always gives the same examples.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from attnlab.data.babi import BabiExample

ACTORS = ("mary", "john", "daniel", "sandra")
ROOMS = ("bathroom", "hallway", "garden", "office", "kitchen", "bedroom")
OBJECTS = ("football", "apple", "milk")
MOVE_VERBS = ("went", "moved", "journeyed", "travelled")
TAKE_VERBS = ("picked up", "got", "grabbed")
DROP_VERBS = ("dropped", "discarded", "put down")
NUMBERS = ("none", "one", "two", "three")
GENERATED_TASKS = (1, 2, 3, 6, 7, 8)


@dataclass
class _World:
    """What the story has said so far, with the statement index that said it."""

    place: dict[str, tuple[str, int]] = field(default_factory=dict)  # actor -> (room, statement)
    holder: dict[str, tuple[str, int]] = field(default_factory=dict)  # object -> (actor, pick statement)
    touched: dict[str, dict[str, int]] = field(default_factory=dict)  # actor -> object -> last pick/drop
    # object -> its rooms, oldest first, each with the statements that put it there
    history: dict[str, list[tuple[str, tuple[int, ...]]]] = field(default_factory=dict)

    def carried(self, actor: str) -> list[str]:
        """Objects the actor holds, in the order they were picked up."""
        held = [(pick, obj) for obj, (who, pick) in self.holder.items() if who == actor]
        return [obj for _, obj in sorted(held)]

    def lies_in(self, obj: str, room: str) -> bool:
        """Whether obj may be picked up in room: it was never seen, or was last seen there."""
        rooms = self.history.get(obj)
        return not rooms or rooms[-1][0] == room

    def _visit(self, obj: str, room: str, why: tuple[int, ...]) -> None:
        rooms = self.history.setdefault(obj, [])
        if not rooms or rooms[-1][0] != room:
            rooms.append((room, why))


def _step(world: _World, rng: random.Random, kinds: str, index: int) -> tuple[str, ...]:
    """Draw one event the world allows, apply it, and return its sentence's words."""
    placed = [a for a in ACTORS if a in world.place]
    takes = [(a, o) for a in placed for o in OBJECTS if o not in world.holder and world.lies_in(o, world.place[a][0])]
    drops = [(w, o) for o, (w, _) in world.holder.items()]
    choice = rng.random()
    if "o" in kinds and takes and choice < 0.3:
        actor, obj = rng.choice(takes)
        world.holder[obj] = (actor, index)
        world.touched.setdefault(actor, {})[obj] = index
        room, moved = world.place[actor]
        world._visit(obj, room, (moved, index))
        return (actor, *rng.choice(TAKE_VERBS).split(), "the", obj)
    if "o" in kinds and drops and choice < 0.45:
        actor, obj = rng.choice(sorted(drops))
        del world.holder[obj]
        world.touched.setdefault(actor, {})[obj] = index
        return (actor, *rng.choice(DROP_VERBS).split(), "the", obj)
    actor = rng.choice(ACTORS)
    here = world.place.get(actor, ("", -1))[0]
    room = rng.choice([r for r in ROOMS if r != here])
    world.place[actor] = (room, index)
    for obj in world.carried(actor):
        world._visit(obj, room, (world.holder[obj][1], index))
    return (actor, rng.choice(MOVE_VERBS), "to", "the", room)


def _question(
    task: int, world: _World, rng: random.Random
) -> tuple[tuple[str, ...], tuple[str, ...], tuple[int, ...]] | None:
    """A question the world can answer now, with its answer and supports; None when there is none."""
    placed = sorted(world.place)
    if task in (1, 6):
        if not placed:
            return None
        actor = rng.choice(placed)
        room, said = world.place[actor]
        if task == 1:
            return ("where", "is", actor), (room,), (said,)
        asked = room if rng.random() < 0.5 else rng.choice([r for r in ROOMS if r != room])
        return ("is", actor, "in", "the", asked), ("yes" if asked == room else "no",), (said,)
    if task in (7, 8):
        if not world.touched:
            return None
        actor = rng.choice(sorted(world.touched))
        held = world.carried(actor)
        supports = tuple(sorted(world.touched[actor].values()))
        if task == 7:
            return ("how", "many", "objects", "is", actor, "carrying"), (NUMBERS[len(held)],), supports
        return ("what", "is", actor, "carrying"), tuple(held) or ("nothing",), supports
    rooms = {o: r for o, r in world.history.items() if (task == 2 and r) or len(r) >= 2}
    if not rooms:
        return None
    obj = rng.choice(sorted(rooms))
    if task == 2:
        room, why = rooms[obj][-1]
        return ("where", "is", "the", obj), (room,), why
    (before, why_before), (room, why_now) = rooms[obj][-2:]
    return ("where", "was", "the", obj, "before", "the", room), (before,), tuple(sorted({*why_before, *why_now}))


def generate_babi(task: int, num_stories: int, seed: int = 0, story_len: int = 10) -> list[BabiExample]:
    """Generated examples of one task kind.

    Args:
        task: one of GENERATED_TASKS (1, 2, 3, 6, 7, 8), numbered as the real bAbI tasks.
        num_stories: stories to tell; each asks a question after every few statements.
        seed: the random seed; the same arguments give the same examples.
        story_len: statements per story.
    Returns:
        The examples, story by story, questions in the order asked.
    """
    if task not in GENERATED_TASKS:
        raise ValueError(f"task must be one of {GENERATED_TASKS}, got {task!r}")
    if num_stories < 1:
        raise ValueError(f"num_stories must be >= 1, got {num_stories}")
    if story_len < 2:
        raise ValueError(f"story_len must be >= 2, got {story_len}")
    rng = random.Random(f"babi-{task}-{seed}")
    kinds = "m" if task in (1, 6) else "mo"
    examples: list[BabiExample] = []
    for _ in range(num_stories):
        world, story = _World(), []
        for index in range(story_len):
            story.append(_step(world, rng, kinds, index))
            if index % 2 == 1 or index == story_len - 1:
                asked = _question(task, world, rng)
                if asked is not None:
                    question, answer, supporting = asked
                    examples.append(BabiExample(tuple(story), question, answer, tuple(sorted(set(supporting)))))
    return examples
