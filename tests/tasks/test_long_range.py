"""A long-range dependency: where the signal sits, the gap to the query, answers and metrics."""

import pytest
import torch
import torch.nn.functional as F

from attnlab.tasks.long_range import FIRST_NOISE, QUERY, LongRange, LongRangeConfig


def draw(task, seed, size=16):
    return task.sample(size, torch.Generator().manual_seed(seed))


def test_same_seed_same_batch_other_seed_other_batch():
    task = LongRange()
    a, b, c = draw(task, 1), draw(task, 1), draw(task, 2)
    assert torch.equal(a.inputs, b.inputs) and torch.equal(a.targets, b.targets)
    assert not torch.equal(a.inputs, c.inputs)


def test_shapes_match_spec():
    task = LongRange()
    spec, batch = task.spec, draw(task, 0)
    assert (spec.seq_len, spec.answer_len, spec.vocab_size, spec.num_outputs) == (41, 1, 14, 14)
    assert batch.inputs.shape == (16, 41) and batch.targets.shape == (16, 1)
    assert batch.inputs.dtype == batch.targets.dtype == torch.long
    assert LongRange(LongRangeConfig(distance=100, jitter=0)).spec.seq_len == 101


@pytest.mark.parametrize("distance, jitter", [(5, 3), (7, 0), (1, 1)])
def test_one_signal_within_the_gap_and_the_answer(distance, jitter):
    task = LongRange(LongRangeConfig(distance=distance, jitter=jitter, classes=3, noise=4))
    classes, noise = range(6, 9), range(FIRST_NOISE, 6)
    batch = draw(task, 7, size=300)
    positions = set()
    for row, answer in zip(batch.inputs.tolist(), batch.targets.tolist()):
        assert len(row) == distance + jitter + 1 and row[-1] == QUERY
        signal = [i for i, tok in enumerate(row) if tok in classes]
        assert len(signal) == 1 and answer == [row[signal[0]]]
        assert all(tok in noise for i, tok in enumerate(row[:-1]) if i != signal[0])
        gap = len(row) - 1 - signal[0]
        assert distance <= gap <= distance + jitter
        positions.add(signal[0])
    assert positions == set(range(jitter + 1))  # every allowed position is used


def test_metrics_with_one_wrong_answer():
    task = LongRange()
    batch = draw(task, 0, size=5)
    classes = task.spec.num_outputs
    perfect = F.one_hot(batch.targets, classes).float() * 50.0  # (b, 1, classes)
    assert task.loss(perfect, batch).item() < 1e-6 and task.metrics(perfect, batch)["accuracy"] == 1.0
    wrong = batch.targets.clone()
    wrong[4, 0] = QUERY
    assert task.metrics(F.one_hot(wrong, classes).float(), batch)["accuracy"] == pytest.approx(4 / 5)


def test_render_and_names():
    task = LongRange(LongRangeConfig(distance=2, jitter=1, classes=2, noise=2))
    assert task.token_names() == ["_", "?", "a", "b", "A", "B"]
    batch = draw(task, 0, size=1)
    batch.inputs[0] = torch.tensor([2, 5, 3, 1])
    batch.targets[0, 0] = 5
    assert task.render(batch) == "input: a B b ?\nanswer: B"


@pytest.mark.parametrize("field, low", [("distance", 1), ("jitter", 0), ("classes", 1), ("noise", 1)])
def test_config_validation(field, low):
    with pytest.raises(ValueError, match=f"^{field} must be >= {low}, got {low - 1}$"):
        LongRangeConfig(**{field: low - 1})
