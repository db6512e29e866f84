"""The adding problem: markers, sums, the predict-1 baseline, MSE loss and tolerance accuracy."""

import pytest
import torch

from attnlab.tasks.adding import TOLERANCE, Adding, AddingConfig


def draw(task, seed, size=16):
    return task.sample(size, torch.Generator().manual_seed(seed))


def test_same_seed_same_batch_other_seed_other_batch():
    task = Adding(AddingConfig(length=12))
    a, b, c = draw(task, 1), draw(task, 1), draw(task, 2)
    assert torch.equal(a.inputs, b.inputs) and torch.equal(a.targets, b.targets)
    assert not torch.equal(a.inputs, c.inputs)


def test_shapes_match_spec():
    task = Adding()
    spec, batch = task.spec, draw(task, 0)
    assert (spec.seq_len, spec.answer_len, spec.input_features, spec.num_outputs, spec.vocab_size) == (50, 1, 2, 1, 0)
    assert spec.regression and not spec.tokens
    assert batch.inputs.shape == (16, 50, 2) and batch.targets.shape == (16, 1)
    assert batch.inputs.dtype == batch.targets.dtype == torch.float32
    assert Adding.metric == "mse" and Adding.maximize is False


@pytest.mark.parametrize("length", [2, 7, 50])
def test_one_marker_per_half_and_the_sum(length):
    task = Adding(AddingConfig(length=length))
    batch = draw(task, 3, size=200)
    half = length // 2
    firsts, seconds = set(), set()
    for steps, target in zip(batch.inputs.tolist(), batch.targets.tolist()):
        values = [v for v, _ in steps]
        marked = [i for i, (_, m) in enumerate(steps) if m == 1.0]
        assert sum(m for _, m in steps) == 2.0 and len(marked) == 2  # every other marker is 0
        assert marked[0] < half <= marked[1]
        assert all(0.0 <= v < 1.0 for v in values)
        assert target[0] == pytest.approx(values[marked[0]] + values[marked[1]], abs=1e-6)
        firsts.add(marked[0])
        seconds.add(marked[1])
    assert firsts == set(range(half)) and seconds == set(range(half, length))


def test_predicting_one_has_mse_one_sixth():
    task = Adding(AddingConfig(length=4))
    batch = draw(task, 0, size=100_000)
    ones = torch.ones(len(batch), 1, 1)  # (b, 1, 1)
    # Var(u1 + u2) = 2/12 for two independent U[0, 1); the estimate's standard error is ~6e-4
    assert task.loss(ones, batch).item() == pytest.approx(1 / 6, abs=4e-3)
    assert task.metrics(ones, batch)["mse"] == pytest.approx(1 / 6, abs=4e-3)


def test_loss_and_metrics_on_hand_made_examples():
    task = Adding(AddingConfig(length=4))
    batch = draw(task, 0, size=2)
    perfect = batch.targets.unsqueeze(-1)  # (b, 1, 1)
    assert task.loss(perfect, batch).item() == 0.0
    assert task.metrics(perfect, batch) == {"mse": 0.0, "accuracy": 1.0}
    batch.targets = torch.tensor([[1.0], [0.5]])
    logits = torch.tensor([[[1.0 + TOLERANCE / 2]], [[0.5 - 2 * TOLERANCE]]])  # right, then wrong
    expected = ((TOLERANCE / 2) ** 2 + (2 * TOLERANCE) ** 2) / 2
    assert task.loss(logits, batch).item() == pytest.approx(expected, rel=1e-4)
    metrics = task.metrics(logits, batch)
    assert metrics["mse"] == pytest.approx(expected, rel=1e-4) and metrics["accuracy"] == 0.5


def test_loss_has_a_gradient():
    task = Adding(AddingConfig(length=4))
    batch = draw(task, 0, size=3)
    logits = torch.zeros(3, 1, 1, requires_grad=True)
    task.loss(logits, batch).backward()
    assert torch.allclose(logits.grad.flatten(), -2 * batch.targets.flatten() / 3)


def test_render_shows_marked_values_and_sum():
    task = Adding(AddingConfig(length=4))
    batch = draw(task, 0, size=1)
    batch.inputs[0] = torch.tensor([[0.25, 1.0], [0.9, 0.0], [0.125, 1.0], [0.3, 0.0]])
    batch.targets[0, 0] = 0.375
    text = task.render(batch, logits=torch.tensor([[[0.4]]]))
    assert text == "input: 4 steps, marked 0.250 (step 0) + 0.125 (step 2)\nanswer: 0.375\npredicted: 0.400"
    assert task.token_names() == []


def test_config_validation():
    with pytest.raises(ValueError, match="^length must be >= 2, got 1$"):
        AddingConfig(length=1)
